"""A line bill's status over its life and its items' collection state."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.invoices import (
    WRITE_OFF_AFTER,
    item_collection_status,
    status_after_close,
    status_after_payment,
    status_when_due,
    write_off_due,
)
from billing.states import IllegalTransition, InvoiceStatus

DUE = date(2026, 12, 31)


def test_a_bill_credits_bring_to_nothing_is_paid_as_issued():
    """Total ≤ 0 at the close: nothing is owed, so the bill is paid."""
    assert status_after_close("open", 0) is InvoiceStatus.PAID
    assert status_after_close("open", -500) is InvoiceStatus.PAID
    assert status_after_close("open", 1) is InvoiceStatus.OPEN


def test_a_second_close_leaves_a_collected_bill_as_it_is():
    """Only an open bill is settled by the close; one already being collected keeps its status."""
    assert status_after_close("partially_paid", -10) is InvoiceStatus.PARTIALLY_PAID
    assert status_after_close("paid", 0) is InvoiceStatus.PAID


def test_payments_before_the_due_date():
    """Partly paid, then paid in full."""
    today = DUE - timedelta(days=3)
    assert (
        status_after_payment("open", total=1000, amount_paid=400, due=DUE, today=today) is InvoiceStatus.PARTIALLY_PAID
    )
    assert (
        status_after_payment("partially_paid", total=1000, amount_paid=1000, due=DUE, today=today) is InvoiceStatus.PAID
    )


def test_a_part_payment_after_the_due_date_stays_overdue():
    """Paying part of an overdue bill leaves it overdue; paying the rest makes it paid."""
    today = DUE + timedelta(days=1)
    assert status_after_payment("overdue", total=1000, amount_paid=10, due=DUE, today=today) is InvoiceStatus.OVERDUE
    assert status_after_payment("overdue", total=1000, amount_paid=1000, due=DUE, today=today) is InvoiceStatus.PAID


def test_a_written_off_bill_takes_no_payment():
    """Uncollectible is final."""
    with pytest.raises(IllegalTransition):
        status_after_payment("uncollectible", total=1000, amount_paid=1000, due=DUE, today=DUE)


def test_overdue_the_day_after_the_due_date():
    """On the due date a bill is still open; the next day it is overdue; a paid one never is."""
    assert status_when_due("open", due=DUE, today=DUE) is InvoiceStatus.OPEN
    assert status_when_due("open", due=DUE, today=DUE + timedelta(days=1)) is InvoiceStatus.OVERDUE
    assert status_when_due("partially_paid", due=DUE, today=DUE + timedelta(days=1)) is InvoiceStatus.OVERDUE
    assert status_when_due("paid", due=DUE, today=DUE + timedelta(days=400)) is InvoiceStatus.PAID


def test_written_off_ninety_days_after_the_due_date():
    """Overdue bills are written off after 90 days, not on the 90th."""
    assert not write_off_due("overdue", due=DUE, today=DUE + WRITE_OFF_AFTER)
    assert write_off_due("overdue", due=DUE, today=DUE + WRITE_OFF_AFTER + timedelta(days=1))
    assert not write_off_due("paid", due=DUE, today=DUE + timedelta(days=365))


@given(st.integers(min_value=1, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_item_collection_status(amount, collected):
    """Collected exactly when collected in full; open when untouched."""
    status = item_collection_status(collected, amount)
    assert (status == "collected") == (collected >= amount)
    assert (status == "open") == (collected == 0)
