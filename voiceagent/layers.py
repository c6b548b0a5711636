"""The channel layer of a single process (used when REDIS_URL is not set)."""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    """Channels' in-memory layer, sweeping expired messages and memberships once a second, not on every call.

    Channels sweeps every channel and group on each send and receive. With a control channel per
    live call and a dashboard message per transcript line, that work grows with the square of
    the number of calls. Messages expire after a minute and memberships after a day, so sweeping
    once a second changes nothing anyone can observe.
    """

    sweep_interval = 1.0
    _swept_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at >= self.sweep_interval:
            self._swept_at = now
            super()._clean_expired()
