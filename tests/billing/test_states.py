"""The state machines of charges, their billing, subscriptions, bills and billing runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.states import (
    CHARGE_TRANSITIONS,
    BillingStatus,
    ChargeStatus,
    IllegalTransition,
    InvoiceStatus,
    RunStatus,
    SubscriptionStatus,
    advance,
    sources_of,
)

KINDS = (ChargeStatus, BillingStatus, SubscriptionStatus, InvoiceStatus, RunStatus)


def test_a_charge_waiting_for_its_subscriber_may_be_confirmed_declined_or_expire():
    """requires_confirmation → processing, canceled or failed; nothing else."""
    for target in (ChargeStatus.PROCESSING, ChargeStatus.CANCELED, ChargeStatus.FAILED):
        assert advance(ChargeStatus.REQUIRES_CONFIRMATION, target) is target
    with pytest.raises(IllegalTransition):
        advance(ChargeStatus.REQUIRES_CONFIRMATION, ChargeStatus.SUCCEEDED)


def test_a_decided_charge_never_changes_again():
    """succeeded, failed and canceled are final."""
    for final in (ChargeStatus.SUCCEEDED, ChargeStatus.FAILED, ChargeStatus.CANCELED):
        assert not CHARGE_TRANSITIONS[final]
        for target in ChargeStatus:
            with pytest.raises(IllegalTransition, match=f"from {final.value}"):
                advance(final, target)


def test_billing_moves_forward_only():
    """Unbilled → billed → collected | uncollectible, never back."""
    assert advance("unbilled", BillingStatus.BILLED) is BillingStatus.BILLED
    assert advance("billed", BillingStatus.COLLECTED) is BillingStatus.COLLECTED
    assert advance("billed", BillingStatus.UNCOLLECTIBLE) is BillingStatus.UNCOLLECTIBLE
    with pytest.raises(IllegalTransition):
        advance("collected", BillingStatus.BILLED)
    with pytest.raises(IllegalTransition):
        advance("unbilled", BillingStatus.COLLECTED)


def test_a_past_due_subscription_may_recover_or_end():
    """A later renewal reactivates a past_due subscription; cancellation ends it for good."""
    assert advance(SubscriptionStatus.PAST_DUE, SubscriptionStatus.ACTIVE) is SubscriptionStatus.ACTIVE
    assert advance(SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED) is SubscriptionStatus.CANCELED
    with pytest.raises(IllegalTransition):
        advance(SubscriptionStatus.CANCELED, SubscriptionStatus.ACTIVE)
    with pytest.raises(IllegalTransition):
        advance(SubscriptionStatus.REQUIRES_CONFIRMATION, SubscriptionStatus.PAST_DUE)


def test_sources_of_lists_every_state_that_may_reach_a_target():
    """The states SQL may change in bulk are exactly those the machine allows."""
    assert sources_of(BillingStatus.BILLED) == (BillingStatus.UNBILLED,)
    assert sources_of(BillingStatus.COLLECTED) == (BillingStatus.BILLED,)
    assert set(sources_of(InvoiceStatus.OVERDUE)) == {
        InvoiceStatus.OPEN,
        InvoiceStatus.PARTIALLY_PAID,
        InvoiceStatus.OVERDUE,
    }


@given(st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.sampled_from(kind), st.sampled_from(kind))))
def test_advance_agrees_with_sources_of(pair):
    """For every pair of states, advance allows a move exactly when sources_of lists it."""
    current, target = pair
    allowed = current in sources_of(target)
    if allowed:
        assert advance(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            advance(current, target)


def test_an_illegal_transition_is_a_conflict():
    """An API caller asking for a move the machine refuses gets a 409."""
    with pytest.raises(IllegalTransition) as raised:
        advance(InvoiceStatus.PAID, InvoiceStatus.OPEN)
    assert raised.value.status == 409
