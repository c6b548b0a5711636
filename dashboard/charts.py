"""Small stacked bar charts, computed here and drawn as inline SVG by the template.

Pure functions: no database, no Django. One bar per day, one colour per assistant.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Calm colours that read well on the dark page; the grey is for calls no assistant answered.
PALETTE = ("#7aa2f7", "#9ece6a", "#e0af68", "#bb9af7", "#7dcfff", "#f7768e", "#73daca", "#ff9e64")
UNANSWERED_COLOUR = "#5c6370"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    legend: list[tuple[str, str]]
    total: float

    @property
    def empty(self) -> bool:
        return not self.bars

    @property
    def axis_x(self) -> float:
        """Where the value labels end, left of the bars."""
        return self.plot_left - 6

    @property
    def label_y(self) -> float:
        """The baseline of the day labels, under the bars."""
        return self.baseline + 16


def colours(names: Iterable[str], unanswered: str) -> dict[str, str]:
    """A stable colour per series name (alphabetical), grey for unanswered calls."""
    ordered = sorted({n for n in names if n != unanswered})
    result = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}
    result[unanswered] = UNANSWERED_COLOUR
    return result


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value - 1e-9:
            return float(candidate)
    return float(10 ** (exponent + 1))


def stacked_daily(
    days: list[dt.date],
    values: dict[str, dict[dt.date, float]],
    colour_of: dict[str, str],
    *,
    describe: Callable[[float], str],
    width: int = 560,
    height: int = 190,
) -> Chart:
    """Bars for `days`, each a stack of `values[series][day]`; `describe` formats a value for people."""
    left, right, top, bottom = 40.0, width - 18.0, 10.0, height - 24.0
    slot = (right - left) / max(len(days), 1)
    bar_width = max(slot * 0.72, 1.0)
    series = sorted(values, key=lambda name: (-sum(values[name].values()), name))
    totals = {day: sum(values[name].get(day, 0.0) for name in series) for day in days}
    top_value = nice_ceiling(max(totals.values(), default=0.0))
    scale = (bottom - top) / top_value

    bars: list[Bar] = []
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_width) / 2
        y = bottom
        for name in series:
            value = values[name].get(day, 0.0)
            if value <= 0:
                continue
            h = max(value * scale, 1.5)
            y -= h
            title = f"{day:%a %-d %b} · {name}: {describe(value)}"
            bars.append(Bar(round(x, 1), round(y, 1), round(bar_width, 1), round(h, 1), colour_of[name], title))
    ticks = [Tick(round(bottom - f * (bottom - top), 1), f"{top_value * f:g}") for f in (0, 0.5, 1)]
    labels = [
        Label(round(left + i * slot + slot / 2, 1), f"{day:%-d %b}")
        for i, day in enumerate(days)
        if (len(days) - 1 - i) % 7 == 0
    ]
    legend = [(name, colour_of[name]) for name in series if sum(values[name].values()) > 0]
    return Chart(width, height, left, right, bottom, bars, ticks, labels, legend, sum(totals.values()))


def count(value: float) -> str:
    n = round(value)
    return f"{n} call" if n == 1 else f"{n} calls"


def minutes(value: float) -> str:
    if value and value < 10 and value != round(value):
        return f"{value:.1f} min"
    return f"{round(value)} min"
