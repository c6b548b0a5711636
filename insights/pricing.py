"""What a call cost: OpenAI's `usage` summed per call, priced per model. Pure arithmetic, no Django.

OpenAI bills each response on its `response.done` usage (the whole conversation is re-read as input
every turn, cached tokens at a discount) and the caller's transcription separately, by tokens or by
seconds of audio. Prices are per million tokens (or per minute of audio) in the price's currency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.0001")  # Call.cost keeps four decimals


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


@dataclass
class RealtimeUsage:
    """Tokens of every `response.done` of a call, added up (cached tokens are part of the inputs)."""

    model: str = ""
    responses: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    def add(self, usage: dict[str, Any] | None) -> None:
        """Add one response's `usage` object (GA shape); None or junk adds nothing."""
        if not isinstance(usage, dict):
            return
        self.responses += 1
        inp = usage.get("input_token_details") or {}
        out = usage.get("output_token_details") or {}
        text, audio = _int(inp.get("text_tokens")), _int(inp.get("audio_tokens"))
        if not inp:
            text = _int(usage.get("input_tokens"))  # no breakdown: bill it all as text
        cached = _int(inp.get("cached_tokens"))
        details = inp.get("cached_tokens_details") or {}
        if details:
            cached_text, cached_audio = _int(details.get("text_tokens")), _int(details.get("audio_tokens"))
        else:  # no breakdown of the cache: text first, as the prefix (instructions) is what is cached first
            cached_text = min(cached, text)
            cached_audio = min(cached - cached_text, audio)
        self.input_text_tokens += text
        self.input_audio_tokens += audio
        self.cached_text_tokens += min(cached_text, text)
        self.cached_audio_tokens += min(cached_audio, audio)
        if out:
            self.output_text_tokens += _int(out.get("text_tokens"))
            self.output_audio_tokens += _int(out.get("audio_tokens"))
        else:
            self.output_text_tokens += _int(usage.get("output_tokens"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RealtimeUsage:
        data = data or {}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TranscriptionUsage:
    """The caller's transcription: billed by tokens or by seconds of audio, depending on the model."""

    model: str = ""
    items: int = 0
    seconds: float = 0.0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    output_text_tokens: int = 0

    def add(self, usage: dict[str, Any] | None) -> None:
        """Add one `…input_audio_transcription.completed` usage: `{type: tokens|duration, …}`."""
        if not isinstance(usage, dict):
            return
        self.items += 1
        if usage.get("type") == "duration":
            try:
                self.seconds += max(0.0, float(usage.get("seconds") or 0))
            except (TypeError, ValueError):
                pass
            return
        inp = usage.get("input_token_details") or {}
        if inp:
            self.input_text_tokens += _int(inp.get("text_tokens"))
            self.input_audio_tokens += _int(inp.get("audio_tokens"))
        else:
            self.input_audio_tokens += _int(usage.get("input_tokens"))
        self.output_text_tokens += _int(usage.get("output_tokens"))

    @property
    def has_tokens(self) -> bool:
        return bool(self.input_text_tokens or self.input_audio_tokens or self.output_text_tokens)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TranscriptionUsage:
        data = data or {}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TextUsage:
    """A text model's tokens (the after-call analysis): input (cached ones included) and output."""

    model: str = ""
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0

    @property
    def has_tokens(self) -> bool:
        return bool(self.input_tokens or self.output_tokens)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TextUsage:
        data = data or {}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Price:
    """A model's list prices: per 1M tokens, and per minute for duration-billed transcription."""

    REALTIME_FIELDS: ClassVar[tuple[str, ...]] = (
        "text_input",
        "cached_text_input",
        "text_output",
        "audio_input",
        "cached_audio_input",
        "audio_output",
    )

    model: str
    currency: str = "USD"
    text_input: Decimal | None = None
    cached_text_input: Decimal | None = None
    text_output: Decimal | None = None
    audio_input: Decimal | None = None
    cached_audio_input: Decimal | None = None
    audio_output: Decimal | None = None
    per_minute: Decimal | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


class PriceMissing(Exception):
    """The price table lacks what this usage needs."""


def _need(price: Price, *names: str) -> list[Decimal]:
    values = [getattr(price, name) for name in names]
    if any(v is None for v in values):
        missing = [n for n, v in zip(names, values, strict=True) if v is None]
        raise PriceMissing(f"{price.model} has no {', '.join(missing)} price")
    return values


def realtime_cost(usage: RealtimeUsage, price: Price) -> Decimal:
    """The reference formula, summed over the call's responses (unrounded).

    (in_text - cached_text)·p_ti + cached_text·p_tc + (in_audio - cached_audio)·p_ai
    + cached_audio·p_ac + out_text·p_to + out_audio·p_ao, prices per 1M tokens.
    """
    ti, tc, to, ai, ac, ao = _need(price, *Price.REALTIME_FIELDS)
    total = (
        (usage.input_text_tokens - usage.cached_text_tokens) * ti
        + usage.cached_text_tokens * tc
        + (usage.input_audio_tokens - usage.cached_audio_tokens) * ai
        + usage.cached_audio_tokens * ac
        + usage.output_text_tokens * to
        + usage.output_audio_tokens * ao
    )
    return total / MILLION


def transcription_cost(usage: TranscriptionUsage, price: Price) -> Decimal:
    """Tokens at the token prices plus seconds at the per-minute price (unrounded)."""
    total = Decimal(0)
    if usage.has_tokens:
        ti, ai, to = _need(price, "text_input", "audio_input", "text_output")
        tokens = usage.input_text_tokens * ti + usage.input_audio_tokens * ai + usage.output_text_tokens * to
        total += tokens / MILLION
    if usage.seconds:
        (per_minute,) = _need(price, "per_minute")
        total += Decimal(str(usage.seconds)) / 60 * per_minute
    return total


def text_cost(usage: TextUsage, price: Price) -> Decimal:
    """(input - cached)·p_ti + cached·p_tc + output·p_to; without a cached price cached tokens cost full price."""
    ti, to = _need(price, "text_input", "text_output")
    tc = price.cached_text_input if price.cached_text_input is not None else ti
    cached = min(usage.cached_tokens, usage.input_tokens)
    return ((usage.input_tokens - cached) * ti + cached * tc + usage.output_tokens * to) / MILLION


@dataclass
class CallCost:
    """A call's cost, its parts, and what could not be priced (so a missing price is visible)."""

    total: Decimal | None
    currency: str
    parts: dict[str, Decimal] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    prices: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": None if self.total is None else str(self.total),
            "currency": self.currency,
            "parts": {k: str(v) for k, v in self.parts.items()},
            "missing_prices": list(self.missing),
            "prices": self.prices,
        }


def round_cost(amount: Decimal) -> Decimal:
    return amount.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP)


def call_cost(
    realtime: RealtimeUsage,
    realtime_price: Price | None,
    transcription: TranscriptionUsage | None = None,
    transcription_price: Price | None = None,
    analysis: TextUsage | None = None,
    analysis_price: Price | None = None,
) -> CallCost:
    """Price a call. The total covers what could be priced; `missing` says what could not.

    The currency is the voice model's; a transcription price in another currency is not added
    (no exchange rates here) but reported as missing.
    """
    currency = realtime_price.currency if realtime_price else (transcription_price or Price("")).currency
    cost = CallCost(total=None, currency=currency or "USD")
    subtotal = Decimal(0)
    priced = False
    work = [("realtime", realtime, realtime_price, realtime_cost)]
    if transcription is not None and (transcription.items or transcription.has_tokens or transcription.seconds):
        work.append(("transcription", transcription, transcription_price, transcription_cost))
    if analysis is not None and analysis.has_tokens:
        work.append(("analysis", analysis, analysis_price, text_cost))
    for part, usage, price, fn in work:
        if price is None:
            if part == "realtime" and not usage.responses:
                continue
            cost.missing.append(f"{usage.model or part}: no price in the price table")
            continue
        if price.currency != cost.currency:
            cost.missing.append(f"{price.model}: priced in {price.currency}, not {cost.currency}")
            continue
        try:
            amount = fn(usage, price)
        except PriceMissing as exc:
            cost.missing.append(str(exc))
            continue
        cost.prices[price.model] = price.as_dict()
        cost.parts[part] = round_cost(amount)
        subtotal += amount
        priced = True
    if priced:
        cost.total = round_cost(subtotal)
    return cost
