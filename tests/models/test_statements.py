"""The hot path's fixed INSERT (models/statements.py) makes the same row, and the same instance,
as Tortoise's own create; an unknown column is refused before anything is written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.states import ChargeStatus
from models.charges import Charge
from models.clock import clock
from models.merchants import IdempotencyKey, Merchant
from models.statements import insert
from settings import Settings


async def a_merchant() -> Merchant:
    """One merchant to hang rows on."""
    return await Merchant.create(
        name="定型", name_kana="テイケイ", return_signing_secret="s" * 32, created_at=await clock.now()
    )


def columns(instance: Charge | IdempotencyKey) -> dict[str, object]:
    """Every stored field of ``instance``, by column."""
    meta = instance._meta
    return {column: getattr(instance, meta.fields_db_projection_reverse[column]) for column in meta.db_fields}


async def test_an_inserted_charge_reads_back_as_returned_with_the_fields_defaults(db: Settings) -> None:
    """Given fields are stored as given, the rest take the model's defaults (id, currency,
    status, metadata), and the returned instance equals the row read back."""
    merchant = await a_merchant()
    now = await clock.now()
    made = await insert(
        Charge,
        merchant_id=merchant.id,
        amount=500,
        description="ゲーム内コイン",
        return_url="https://game.example/back",
        confirmation_token="tok_statements",
        created_at=now,
        expires_at=now + timedelta(minutes=30),
    )
    stored = await Charge.get(id=made.id)
    assert columns(made) == columns(stored)
    assert made.id.startswith("ch_")
    assert (stored.currency, stored.status, stored.metadata) == ("jpy", ChargeStatus.REQUIRES_CONFIRMATION, {})
    assert stored.to_api() == made.to_api()


async def test_a_generated_key_comes_back_with_the_inserted_row(db: Settings) -> None:
    """A model whose id the database generates gets that id on the returned instance."""
    merchant = await a_merchant()
    now = await clock.now()
    first = await insert(IdempotencyKey, merchant_id=merchant.id, key="a", request_fingerprint="f" * 64, created_at=now)
    second = await insert(
        IdempotencyKey, merchant_id=merchant.id, key="b", request_fingerprint="f" * 64, created_at=now
    )
    assert second.id != first.id
    assert columns(await IdempotencyKey.get(id=second.id)) == columns(second)


async def test_an_unknown_column_is_refused_and_nothing_is_written(db: Settings) -> None:
    """A misspelt column is a TypeError naming it; no row is written."""
    merchant = await a_merchant()
    with pytest.raises(TypeError, match="amuont"):
        await insert(Charge, merchant_id=merchant.id, amuont=500)
    assert await Charge.all().count() == 0
