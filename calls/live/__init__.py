"""The live call: plain asyncio, nothing of Django or Channels (see docs/architecture.md)."""
