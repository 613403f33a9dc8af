"""A payment spread over an invoice's items by largest remainder."""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing.splits import allocate


def test_an_exact_split_is_the_weights() -> None:
    """Paying the whole of 50 + 30 + 20 gives each item its amount."""
    assert allocate(100, [50, 30, 20]) == [50, 30, 20]


def test_leftover_yen_go_to_the_largest_remainders() -> None:
    """10 over 1 : 2 is 3.33 and 6.67: the second has the larger remainder and gets the yen."""
    assert allocate(10, [1, 2]) == [3, 7]


def test_ties_go_to_the_earlier_item() -> None:
    """Equal remainders: the leftover yen go to the first items in order."""
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]


def test_credit_items_get_nothing() -> None:
    """Non-positive items take no part; the payment is spread over the positive ones only."""
    assert allocate(100, [100, -30, 50]) == [67, 0, 33]
    assert allocate(150, [100, -30, 0, 50]) == [100, 0, 0, 50]


def test_a_zero_payment_gives_zeros() -> None:
    """Nothing paid: every part is zero, with or without positive items."""
    assert allocate(0, [10, -10]) == [0, 0]
    assert allocate(0, []) == []


@pytest.mark.parametrize(("amount", "weights"), [(-1, [10]), (5, []), (5, [0, -5])])
def test_impossible_allocations_are_refused(amount: int, weights: list[int]) -> None:
    """A negative payment, or a payment with no positive item to take it, is refused."""
    with pytest.raises(ValueError, match="payment"):
        allocate(amount, weights)


weight_lists = st.lists(st.integers(min_value=-10_000, max_value=100_000), min_size=1, max_size=30)


@given(st.integers(min_value=0, max_value=10**7), weight_lists)
def test_parts_add_up_and_stay_within_a_yen_of_the_share(amount: int, weights: list[int]) -> None:
    """The parts sum to the payment, and each is the floor or ceiling of its exact share."""
    total = sum(weight for weight in weights if weight > 0)
    assume(total > 0)
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    assert len(parts) == len(weights)
    for part, weight in zip(parts, weights, strict=True):
        share = Fraction(amount * max(weight, 0), total)
        assert floor(share) <= part <= ceil(share)


@given(weight_lists)
def test_paying_the_positive_total_pays_each_item_in_full(weights: list[int]) -> None:
    """When the payment equals the positive items' sum, each part equals its item's amount."""
    positive = [max(weight, 0) for weight in weights]
    assume(sum(positive) > 0)
    assert allocate(sum(positive), weights) == positive


def test_a_credit_is_netted_not_collected() -> None:
    """Items 1,000 and a 300 credit: paying half of the 700 collects 500 of the 1,000; all of it, 1,000."""
    from billing.splits import collected_share, spread_payment

    assert collected_share(350, 700, 1000) == 500
    assert spread_payment(350, [1000], invoice_total=700, positive_total=1000, paid_before=0) == [500]
    assert spread_payment(350, [500], invoice_total=700, positive_total=1000, paid_before=350) == [500]


@given(
    st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=20_000),
    st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=5),
)
def test_payments_in_any_instalments_collect_exactly_everything(
    items: list[int], credit: int, instalments: list[int]
) -> None:
    """Paying the whole total in any instalments collects each positive item exactly, never more."""
    from billing.splits import spread_payment

    positive = sum(items)
    total = positive - credit
    assume(total > 0)  # an invoice the credits bring to zero owes nothing and is settled at once
    remaining = list(items)
    paid = 0
    plan = [*instalments, total]  # the last instalment settles whatever is left
    for wanted in plan:
        payment = min(wanted, total - paid)
        parts = spread_payment(payment, remaining, invoice_total=total, positive_total=positive, paid_before=paid)
        assert all(0 <= part <= left for part, left in zip(parts, remaining, strict=True))
        remaining = [left - part for left, part in zip(remaining, parts, strict=True)]
        paid += payment
    assert remaining == [0] * len(items)
