"""The state machines of product.md §3 and §6: a charge, its billing, a subscription, a line
bill and a billing run. Every status change in the code goes through ``advance``, which answers
the new state or raises ``IllegalTransition``; the tables below are the whole of the rules.

A state is stored as its lower-case name, exactly as the API shows it (``StrEnum``), so the
models declare their fields with these enums and SQL compares with the same strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from billing.errors import Conflict

__all__ = [
    "BILLING_TRANSITIONS",
    "CHARGE_TRANSITIONS",
    "INVOICE_TRANSITIONS",
    "RUN_TRANSITIONS",
    "SUBSCRIPTION_TRANSITIONS",
    "BillingStatus",
    "ChargeStatus",
    "IllegalTransition",
    "InvoiceStatus",
    "RunStatus",
    "SubscriptionStatus",
    "advance",
    "sources_of",
]


class ChargeStatus(StrEnum):
    """The purchase's lifecycle (product.md §3)."""

    REQUIRES_CONFIRMATION = "requires_confirmation"
    PROCESSING = "processing"
    RESERVED = "reserved"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class BillingStatus(StrEnum):
    """Where a succeeded charge is on its way to the merchant's payout."""

    UNBILLED = "unbilled"
    BILLED = "billed"
    COLLECTED = "collected"
    UNCOLLECTIBLE = "uncollectible"


class SubscriptionStatus(StrEnum):
    """A ``past_due`` subscription is canceled when its month ends."""

    REQUIRES_CONFIRMATION = "requires_confirmation"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    FAILED = "failed"


class InvoiceStatus(StrEnum):
    """Where the line's bill stands with the carrier's collection (product.md §6)."""

    OPEN = "open"
    PAID = "paid"
    PARTIALLY_PAID = "partially_paid"
    OVERDUE = "overdue"
    UNCOLLECTIBLE = "uncollectible"


class RunStatus(StrEnum):
    """A close of one period: ``failed`` once a batch has used every retry."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


C, B, S, V, R = ChargeStatus, BillingStatus, SubscriptionStatus, InvoiceStatus, RunStatus

CHARGE_TRANSITIONS: Mapping[ChargeStatus, frozenset[ChargeStatus]] = {
    # Confirmed (to the auth worker), declined or canceled by the merchant, expired unconfirmed.
    C.REQUIRES_CONFIRMATION: frozenset({C.PROCESSING, C.CANCELED, C.FAILED}),
    # Decided; canceled when its subscription ended while the subscriber was signing in; back to
    # the subscriber after a mistyped password (product.md §10, "Confirmation page, wrong password").
    C.PROCESSING: frozenset({C.SUCCEEDED, C.FAILED, C.CANCELED, C.REQUIRES_CONFIRMATION, C.RESERVED}),
    # A two-step (CAMARA preparePayment) purchase the subscriber confirmed: it holds its amount
    # against the limits until the aggregator confirms it (succeeded), cancels it or it expires
    # (canceled), or it is denied at confirmation (failed: the merchant stopped meanwhile).
    C.RESERVED: frozenset({C.SUCCEEDED, C.CANCELED, C.FAILED}),
    C.SUCCEEDED: frozenset(),
    C.FAILED: frozenset(),
    C.CANCELED: frozenset(),
}
BILLING_TRANSITIONS: Mapping[BillingStatus, frozenset[BillingStatus]] = {
    B.UNBILLED: frozenset({B.BILLED}),
    B.BILLED: frozenset({B.COLLECTED, B.UNCOLLECTIBLE}),
    B.COLLECTED: frozenset(),
    B.UNCOLLECTIBLE: frozenset(),
}
SUBSCRIPTION_TRANSITIONS: Mapping[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    # The first month succeeds (active) or fails or expires (failed), or it is declined.
    S.REQUIRES_CONFIRMATION: frozenset({S.ACTIVE, S.FAILED, S.CANCELED}),
    # Renewed (stays active), a renewal fails (past_due), or canceled by anyone.
    S.ACTIVE: frozenset({S.ACTIVE, S.PAST_DUE, S.CANCELED}),
    # A later renewal succeeds, or the month ends (canceled).
    S.PAST_DUE: frozenset({S.ACTIVE, S.PAST_DUE, S.CANCELED}),
    S.CANCELED: frozenset(),
    S.FAILED: frozenset(),
}
INVOICE_TRANSITIONS: Mapping[InvoiceStatus, frozenset[InvoiceStatus]] = {
    V.OPEN: frozenset({V.PAID, V.PARTIALLY_PAID, V.OVERDUE}),
    V.PARTIALLY_PAID: frozenset({V.PAID, V.PARTIALLY_PAID, V.OVERDUE}),
    V.OVERDUE: frozenset({V.PAID, V.OVERDUE, V.UNCOLLECTIBLE}),
    V.PAID: frozenset(),
    V.UNCOLLECTIBLE: frozenset(),
}
RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    R.RUNNING: frozenset({R.SUCCEEDED, R.FAILED}),
    # A failed run's dead-lettered batch, redelivered by hand and merged, finishes the run.
    R.FAILED: frozenset({R.SUCCEEDED}),
    R.SUCCEEDED: frozenset(),
}

State = TypeVar("State", ChargeStatus, BillingStatus, SubscriptionStatus, InvoiceStatus, RunStatus)
_MACHINES: dict[type[StrEnum], Mapping[object, frozenset[object]]] = {
    ChargeStatus: CHARGE_TRANSITIONS,  # type: ignore[dict-item]
    BillingStatus: BILLING_TRANSITIONS,  # type: ignore[dict-item]
    SubscriptionStatus: SUBSCRIPTION_TRANSITIONS,  # type: ignore[dict-item]
    InvoiceStatus: INVOICE_TRANSITIONS,  # type: ignore[dict-item]
    RunStatus: RUN_TRANSITIONS,  # type: ignore[dict-item]
}


class IllegalTransition(Conflict):
    """A change the state machine does not allow (a request for an object in the wrong state)."""

    code = "illegal_transition"


def advance(current: State | str, target: State) -> State:
    """``target`` if the machine of ``target``'s kind allows ``current`` → ``target``; otherwise
    ``IllegalTransition``, naming both."""
    kind = type(target)
    now = kind(current)
    if target not in _MACHINES[kind][now]:
        raise IllegalTransition(f"A {kind.__name__} cannot go from {now.value} to {target.value}.")
    return target


def sources_of(target: State) -> tuple[State, ...]:
    """Every state from which ``target`` may be reached, in declaration order (for SQL that
    changes many rows at once: ``WHERE status IN (...)``)."""
    kind = type(target)
    machine = _MACHINES[kind]
    return tuple(state for state in kind if target in machine[state])
