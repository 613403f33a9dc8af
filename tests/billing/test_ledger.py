"""Ledger postings: every money movement is a balanced journal entry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from billing.ledger import (
    balanced,
    billed_postings,
    collected_postings,
    fee_postings,
    payout_postings,
    written_off_postings,
)

YEN = st.integers(min_value=-10_000_000, max_value=10_000_000)
MERCHANTS = st.dictionaries(st.sampled_from(["mer_a", "mer_b", "mer_c"]), YEN, max_size=3)


@given(st.integers(min_value=0, max_value=10_000_000), MERCHANTS)
def test_billed_entries_balance(base_fees, payable):
    """What a close bills: receivable = base fees + what is owed on to merchants, whatever the figures."""
    postings = billed_postings(base_fees=base_fees, payable=payable)
    assert balanced(postings)
    assert postings[0] == ("receivable:lines", None, base_fees + sum(payable.values()))


def test_billed_without_base_fees_has_no_revenue_line():
    """A bill of charges only posts no base-fee revenue."""
    postings = billed_postings(base_fees=0, payable={"mer_a": 500, "mer_b": -100})
    assert postings == [
        ("receivable:lines", None, 400),
        ("payable:merchant", "mer_a", -500),
        ("payable:merchant", "mer_b", 100),
    ]


@given(YEN)
def test_collections_balance(amount):
    """Cash in, receivable down, by the same amount."""
    postings = collected_postings(amount)
    assert balanced(postings)
    assert ("cash:collections", None, amount) in postings


@given(st.integers(min_value=0, max_value=10_000_000), MERCHANTS)
def test_write_offs_balance_and_the_carrier_takes_the_rest(unpaid, lost):
    """Each merchant loses its uncollected items; bad debt is what remains."""
    postings = written_off_postings(unpaid=unpaid, lost_by_merchant=lost)
    assert balanced(postings)
    assert postings[-1] == ("loss:bad_debt", None, unpaid - sum(lost.values()))


@given(st.integers(min_value=0, max_value=10_000_000), st.integers(min_value=0, max_value=10_000_000))
def test_fee_entries_balance(fee, setup_fee):
    """The fee and the setup fee come out of what is owed to the merchant."""
    postings = fee_postings("mer_a", fee=fee, setup_fee=setup_fee)
    assert balanced(postings)
    assert postings[0] == ("payable:merchant", "mer_a", fee + setup_fee)


@given(st.integers(min_value=0, max_value=10_000_000))
def test_payout_entries_balance(net):
    """A transfer settles what was owed to the merchant."""
    assert balanced(payout_postings("mer_a", net))


def test_balanced_sees_a_yen_out():
    """An entry off by one yen is not balanced."""
    assert not balanced([("cash:collections", None, 100), ("receivable:lines", None, -99)])
