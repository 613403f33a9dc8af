"""The geometry of the sites' bar charts, drawn as inline SVG without script (product.md §10).

Pure arithmetic, no I/O: groups of whole-yen values become bars inside a plot area, with a
rounded scale and its ticks. ``api/templates/site/charts.html`` turns a ``BarChart`` into SVG
markup, so the merchant site and the ops console draw the same charts. Geometry is in floats
(pixels, not money); the values stay the ints they were given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Area", "Bar", "BarChart", "Group", "Label", "Tick", "grouped_bars", "nice_step"]

TICK_COUNT = 4
NICE_MANTISSAS = (1, 2, 5)


@dataclass(frozen=True)
class Area:
    """The plot area inside the chart's margins, in SVG user units."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        """The plot area's right edge."""
        return self.left + self.width

    @property
    def bottom(self) -> float:
        """The plot area's bottom edge (the zero line)."""
        return self.top + self.height


@dataclass(frozen=True)
class Group:
    """One slot on the x axis (a day, a month) and its value for each series, in series order;
    ``tick`` is a shorter text for the axis (the label itself when not given)."""

    label: str
    values: tuple[int, ...]
    tick: str | None = None


@dataclass(frozen=True)
class Bar:
    """One drawn bar: its series, its group's label, the value and the rectangle."""

    series: str
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    """A horizontal grid line of the value axis."""

    value: int
    y: float


@dataclass(frozen=True)
class Label:
    """A label under the x axis, centred on its group."""

    text: str
    x: float


@dataclass(frozen=True)
class BarChart:
    """Everything the SVG macro draws; ``scale`` is the value at the top of the plot area."""

    width: int
    height: int
    area: Area
    scale: int
    series: tuple[str, ...]
    groups: tuple[Group, ...]
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[Label, ...]


def nice_step(maximum: int, count: int = TICK_COUNT) -> int:
    """The smallest 1, 2 or 5 × 10^k whose ``count`` steps reach ``maximum`` (at least 1)."""
    magnitude = 1
    while True:
        for mantissa in NICE_MANTISSAS:
            if mantissa * magnitude * count >= maximum:
                return mantissa * magnitude
        magnitude *= 10


def grouped_bars(  # noqa: PLR0913 - the data, then keyword-only sizes
    groups: Sequence[Group],
    series: Sequence[str],
    *,
    width: int = 720,
    height: int = 240,
    margins: tuple[float, float, float, float] = (12, 12, 28, 84),
    label_every: int = 1,
    gap: float = 0.2,
    max_bar_width: float = 32,
) -> BarChart:
    """Bars side by side in each group, heights in proportion to the values on a rounded scale.

    ``margins`` are (top, right, bottom, left); ``gap`` is the share of each group's slot left
    empty between groups; ``label_every`` labels every n-th group counted back from the last
    (so the latest day is always labelled); bars are at most ``max_bar_width`` wide, centred in
    their slot, so a chart of one month does not fill the page with three slabs. A negative
    value is drawn as no bar: these charts show amounts of money moved, never below zero.
    """
    if any(len(group.values) != len(series) for group in groups):
        raise ValueError("every group needs one value per series")
    top, right, bottom, left = margins
    area = Area(left=left, top=top, width=max(width - left - right, 1), height=max(height - top - bottom, 1))
    step = nice_step(max((v for group in groups for v in group.values), default=0))
    scale = step * TICK_COUNT
    slot = area.width / max(len(groups), 1)
    bar_width = min(slot * (1 - gap) / max(len(series), 1), max_bar_width)
    bars = []
    for index, group in enumerate(groups):
        start = area.left + (index + 0.5) * slot - bar_width * len(series) / 2
        for position, (name, value) in enumerate(zip(series, group.values, strict=True)):
            bar_height = area.height * max(value, 0) / scale
            bars.append(
                Bar(
                    series=name,
                    label=group.label,
                    value=value,
                    x=start + position * bar_width,
                    y=area.bottom - bar_height,
                    width=bar_width,
                    height=bar_height,
                )
            )
    ticks = tuple(Tick(value=n * step, y=area.bottom - area.height * n / TICK_COUNT) for n in range(TICK_COUNT + 1))
    every = max(label_every, 1)
    labels = tuple(
        Label(text=group.tick or group.label, x=area.left + (index + 0.5) * slot)
        for index, group in enumerate(groups)
        if (len(groups) - 1 - index) % every == 0
    )
    return BarChart(
        width=width,
        height=height,
        area=area,
        scale=scale,
        series=tuple(series),
        groups=tuple(groups),
        bars=tuple(bars),
        ticks=ticks,
        labels=labels,
    )
