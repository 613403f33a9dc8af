"""Line invoices (one per line and period), their items, billing runs and collections.

The database holds the "at most once" rules of the month close: one invoice per line and
period, one item per charge, one credit item per refund.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from billing.states import InvoiceStatus, RunStatus
from models.base import State, id_factory

if TYPE_CHECKING:
    from models.charges import Charge, Refund
    from models.lines import Line
    from models.merchants import Merchant

__all__ = [
    "BillingBatch",
    "BillingRun",
    "Collection",
    "CollectionAllocation",
    "Invoice",
    "InvoiceItem",
    "InvoiceStatus",
    "InvoiceTax",
    "ItemKind",
]


class ItemKind(State):
    """The line's own fee heads the bill; then the charges; then credits for refunds."""

    BASE_FEE = "base_fee"
    CHARGE = "charge"
    CREDIT = "credit"


class BillingRun(Model):
    """One close of one period, fanned out in batches of lines."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("run"))
    period = fields.CharField(max_length=7)
    status = fields.CharField(max_length=16, default=RunStatus.RUNNING.value)
    batches_total = fields.IntField(default=0)
    batches_done = fields.IntField(default=0)
    lines = fields.IntField(default=0)
    invoices = fields.IntField(default=0)
    total_billed = fields.BigIntField(default=0)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    payouts_requested_at = fields.DatetimeField(null=True)  # the scheduler asked for the period's payouts

    class Meta:
        table = "billing_runs"
        indexes = (("period", "status"),)


class BillingBatch(Model):
    """One batch of a close: the lines ``first_line_id`` to ``last_line_id``. Marked done in the
    transaction that wrote its invoices, so a redelivered batch finds itself done."""

    id = fields.BigIntField(primary_key=True)
    run: fields.ForeignKeyRelation[BillingRun] = fields.ForeignKeyField(
        "models.BillingRun", related_name="batches", on_delete=fields.RESTRICT
    )
    first_line_id = fields.CharField(max_length=13)
    last_line_id = fields.CharField(max_length=13)
    done_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)  # its retries ran out; the run is failed
    error = fields.CharField(max_length=500, null=True)

    if TYPE_CHECKING:
        run_id: str

    class Meta:
        table = "billing_batches"
        unique_together = (("run_id", "first_line_id"),)


class Invoice(Model):
    """The monthly bill of one line: its own fee and every charge of the period."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("inv"))
    line: fields.ForeignKeyRelation[Line] = fields.ForeignKeyField(
        "models.Line", related_name="invoices", on_delete=fields.RESTRICT
    )
    period = fields.CharField(max_length=7)
    status = fields.CharEnumField(InvoiceStatus, max_length=16, default=InvoiceStatus.OPEN)
    total = fields.BigIntField()
    amount_paid = fields.BigIntField(default=0)
    due_date = fields.DateField()
    billing_run: fields.ForeignKeyNullableRelation[BillingRun] = fields.ForeignKeyField(
        "models.BillingRun", related_name="invoice_set", null=True, on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField()

    if TYPE_CHECKING:
        line_id: str

    class Meta:
        table = "invoices"
        unique_together = (("line_id", "period"),)


class InvoiceItem(Model):
    """One line of a bill: merchant items carry the collection state the payout reads."""

    id = fields.BigIntField(primary_key=True)
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="items", on_delete=fields.RESTRICT
    )
    position = fields.IntField()
    kind = fields.CharEnumField(ItemKind, max_length=16)
    charge: fields.OneToOneNullableRelation[Charge] = fields.OneToOneField(
        "models.Charge", related_name="invoice_item", null=True, on_delete=fields.RESTRICT
    )
    refund: fields.OneToOneNullableRelation[Refund] = fields.OneToOneField(
        "models.Refund", related_name="invoice_item", null=True, on_delete=fields.RESTRICT
    )
    merchant: fields.ForeignKeyNullableRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="invoice_items", null=True, on_delete=fields.RESTRICT
    )
    description = fields.CharField(max_length=500)
    amount = fields.BigIntField()
    tax_rate = fields.DecimalField(max_digits=5, decimal_places=4)
    collected_amount = fields.BigIntField(default=0)
    collection_status = fields.CharField(max_length=16, default="open")
    paid_out_amount = fields.BigIntField(default=0)
    billing_run_id = fields.CharField(max_length=32, null=True)  # the close that wrote it (its ledger entry)

    if TYPE_CHECKING:
        invoice_id: str
        charge_id: str | None
        refund_id: str | None
        merchant_id: str | None

    class Meta:
        table = "invoice_items"
        unique_together = (("invoice_id", "position"),)
        indexes = (("merchant_id", "collection_status"),)


class InvoiceTax(Model):
    """Consumption tax of one invoice at one rate, computed once and rounded down."""

    id = fields.BigIntField(primary_key=True)
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="taxes", on_delete=fields.RESTRICT
    )
    rate = fields.DecimalField(max_digits=5, decimal_places=4)
    taxable_total = fields.BigIntField()
    tax = fields.BigIntField()

    class Meta:
        table = "invoice_taxes"
        unique_together = (("invoice_id", "rate"),)


class Collection(Model):
    """Money the carrier reports it collected for one invoice. A source reference is
    recorded at most once, so importing the same result file twice pays nothing twice."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("col"))
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="collections", on_delete=fields.RESTRICT
    )
    amount = fields.BigIntField()
    paid_at = fields.DatetimeField()
    source = fields.CharField(max_length=32)
    source_reference = fields.CharField(max_length=128)
    result_code = fields.SmallIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "collections"
        unique_together = (("source", "source_reference"),)


class CollectionAllocation(Model):
    """The share of one collection that fell on one item (largest remainder)."""

    id = fields.BigIntField(primary_key=True)
    collection: fields.ForeignKeyRelation[Collection] = fields.ForeignKeyField(
        "models.Collection", related_name="allocations", on_delete=fields.RESTRICT
    )
    item: fields.ForeignKeyRelation[InvoiceItem] = fields.ForeignKeyField(
        "models.InvoiceItem", related_name="allocations", on_delete=fields.RESTRICT
    )
    amount = fields.BigIntField()

    class Meta:
        table = "collection_allocations"
        unique_together = (("collection_id", "item_id"),)
