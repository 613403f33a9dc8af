"""The bar charts' geometry (api/site/charts.py): bars stay in the plot, heights in proportion."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.site.charts import Group, grouped_bars, nice_step

EPSILON = 1e-6
amounts = st.integers(min_value=-1_000, max_value=10**12)


@st.composite
def chart_data(draw: st.DrawFn) -> tuple[list[Group], list[str]]:
    """Between 0 and 70 groups of 1 to 3 series each."""
    series = [f"s{n}" for n in range(draw(st.integers(min_value=1, max_value=3)))]
    count = draw(st.integers(min_value=0, max_value=70))
    groups = [Group(f"g{n}", tuple(draw(amounts) for _ in series)) for n in range(count)]
    return groups, series


@given(chart_data(), st.integers(min_value=120, max_value=2000), st.integers(min_value=80, max_value=800))
def test_bars_never_leave_the_plot_area(data: tuple[list[Group], list[str]], width: int, height: int) -> None:
    """Every bar lies inside the plot area, whatever the values and the chart's size."""
    groups, series = data
    chart = grouped_bars(groups, series, width=width, height=height)
    area = chart.area
    assert len(chart.bars) == len(groups) * len(series)
    for bar in chart.bars:
        assert area.left - EPSILON <= bar.x
        assert bar.x + bar.width <= area.right + EPSILON
        assert area.top - EPSILON <= bar.y
        assert bar.y + bar.height <= area.bottom + EPSILON
        assert bar.height >= 0


@given(chart_data())
def test_heights_are_in_proportion_to_the_values(data: tuple[list[Group], list[str]]) -> None:
    """A bar's share of the plot's height is its value's share of the scale; negatives draw nothing."""
    groups, series = data
    chart = grouped_bars(groups, series)
    assert chart.scale >= max((v for g in groups for v in g.values), default=0)
    for bar in chart.bars:
        assert bar.height / chart.area.height == pytest.approx(max(bar.value, 0) / chart.scale, abs=EPSILON)
        assert bar.y + bar.height == pytest.approx(chart.area.bottom)


@given(chart_data())
def test_bars_of_one_chart_do_not_overlap(data: tuple[list[Group], list[str]]) -> None:
    """Bars are laid left to right, each starting where the one before ended or later."""
    groups, series = data
    bars = grouped_bars(groups, series).bars
    for before, after in pairwise(bars):
        assert before.x + before.width <= after.x + EPSILON


@given(st.integers(min_value=0, max_value=10**13))
def test_the_scale_is_a_round_number_just_above_the_largest_value(maximum: int) -> None:
    """The step is 1, 2 or 5 times a power of ten, and no smaller such step would reach the value."""
    step = nice_step(maximum)
    assert step * 4 >= maximum
    digits = str(step)
    assert digits[0] in "125"
    assert set(digits[1:]) <= {"0"}
    if step > 1:  # the round number just below: 5 → 2, 2 → 1, 1 → 0.5 of the next power down
        smaller = step * 2 // 5 if digits[0] == "5" else step // 2
        assert smaller * 4 < maximum


def test_ticks_run_from_zero_to_the_scale_bottom_to_top() -> None:
    """Five ticks, 0 at the zero line and the scale at the top of the plot area."""
    chart = grouped_bars([Group("a", (1_200,)), Group("b", (300,))], ["sales"])
    assert [tick.value for tick in chart.ticks] == [0, 500, 1_000, 1_500, 2_000]
    assert chart.ticks[0].y == chart.area.bottom
    assert chart.ticks[-1].y == chart.area.top


def test_labels_count_back_from_the_last_group() -> None:
    """Every third of ten groups is labelled, always including the last one."""
    groups = [Group(str(n), (n,)) for n in range(10)]
    labels = grouped_bars(groups, ["sales"], label_every=3).labels
    assert [label.text for label in labels] == ["0", "3", "6", "9"]


def test_axis_labels_use_the_short_tick_when_given() -> None:
    """A group's tick (11/10) labels the axis; its full label stays on the bar."""
    chart = grouped_bars([Group("2030-11-10", (5,), tick="11/10")], ["sales"])
    assert [label.text for label in chart.labels] == ["11/10"]
    assert chart.bars[0].label == "2030-11-10"


def test_bars_are_no_wider_than_the_limit_and_centred() -> None:
    """One group of three on a wide chart: bars of the maximum width, centred on the group's label."""
    chart = grouped_bars([Group("2030-11", (3, 2, 1))], ["billed", "collected", "paid"], max_bar_width=30)
    assert {bar.width for bar in chart.bars} == {30}
    middle = chart.bars[1]
    assert middle.x + middle.width / 2 == pytest.approx(chart.labels[0].x)


def test_a_group_without_a_value_per_series_is_refused() -> None:
    """A group with fewer values than series is a programming error, said at once."""
    with pytest.raises(ValueError, match="one value per series"):
        grouped_bars([Group("a", (1,))], ["sales", "refunds"])
