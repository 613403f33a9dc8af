"""Pages waiting for a confirmation's decision are woken by it (models/operations/decisions.py):
on PostgreSQL by the deciding transaction's NOTIFY, delivered only if it commits; on SQLite by
re-reading the charge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from tortoise.transactions import in_transaction

from billing.states import ChargeStatus
from models.charges import Charge
from models.clock import clock
from models.merchants import Merchant
from models.operations.decisions import DecisionWaiters, announce_decided
from settings import Settings


async def processing_charge() -> Charge:
    """A merchant and one charge of it being decided."""
    now = await clock.now()
    merchant = await Merchant.create(name="待機", name_kana="タイキ", return_signing_secret="s" * 32, created_at=now)
    return await Charge.create(
        merchant=merchant,
        amount=100,
        description="待機テスト",
        status=ChargeStatus.PROCESSING,
        created_at=now,
        expires_at=now + timedelta(minutes=30),
    )


@pytest.fixture
async def waiters(db: Settings) -> AsyncIterator[DecisionWaiters]:
    """A web process's waiters on the test database, closed afterwards."""
    made = DecisionWaiters(db.database_url)
    yield made
    await made.close()


async def decide(charge: Charge, status: ChargeStatus) -> None:
    """Decide ``charge`` and announce it, in one committed transaction."""
    async with in_transaction():
        await Charge.filter(id=charge.id).update(status=status)
        await announce_decided(charge.id)


async def test_a_committed_decision_wakes_its_waiter(waiters: DecisionWaiters) -> None:
    """A waiter registered for a charge is woken when the transaction announcing it commits."""
    charge = await processing_charge()
    async with waiters.waiting(charge.id) as wait:
        await decide(charge, ChargeStatus.SUCCEEDED)
        assert await wait(30) is True


async def test_a_rolled_back_decision_wakes_nobody(db: Settings, waiters: DecisionWaiters) -> None:
    """A decision that rolled back announces nothing: the waiter waits out its time."""
    if not db.database_url.startswith("postgres"):
        pytest.skip("SQLite waiters re-read the charge; there is no announcement to roll back")
    charge = await processing_charge()

    async def fail_after_announcing() -> None:
        async with in_transaction():
            await announce_decided(charge.id)
            raise RuntimeError("the decision failed")

    async with waiters.waiting(charge.id) as wait:
        with pytest.raises(RuntimeError):
            await fail_after_announcing()
        assert await wait(0.5) is False


async def test_another_charges_decision_does_not_wake_a_waiter(waiters: DecisionWaiters) -> None:
    """Only the charge waited for wakes its waiter."""
    charge, other = await processing_charge(), await processing_charge()
    async with waiters.waiting(charge.id) as wait:
        await decide(other, ChargeStatus.SUCCEEDED)
        assert await wait(0.5) is False


async def test_an_unreachable_listener_falls_back_to_reading_the_charge(db: Settings) -> None:
    """With no listener to be had, the wait still ends when the charge leaves processing."""
    charge = await processing_charge()
    waiters = DecisionWaiters("postgres://nobody@127.0.0.1:1/none")
    await Charge.filter(id=charge.id).update(status=ChargeStatus.FAILED)
    async with waiters.waiting(charge.id) as wait:
        assert await wait(5) is True
    await waiters.close()
