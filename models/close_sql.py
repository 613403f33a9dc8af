"""Every statement of the month close (product.md §5), written out whole, one function each.

Each function takes the ``Dialect`` and answers the statement's template (``models.sql``
placeholders); its docstring names what it writes and the unique key it relies on. The SQL
only selects and writes in bulk: the money rules (taxes, a bill's status at issue, the ledger
entry) are decided in Python by ``billing/`` between these statements
(``models.operations.closing``), and the states the SQL compares come from the state machines
of ``billing.states``.

Every statement of a batch reaches the big tables through the batch's line range
(``%(first)s`` to ``%(last)s``) or through explicit ids, never through a plan that depends on
fresh statistics: the tables grow by millions of rows within one close. Each INSERT names the
one key it expects to meet (``ON CONFLICT (key) DO NOTHING``): any other clash fails the batch
loudly instead of dropping a row, and PostgreSQL checks that one index ahead of each row.

``STATEMENTS`` lists them all, for the golden files of their rendered SQL and the test that
has each one planned by the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from billing.states import BillingStatus, ChargeStatus, InvoiceStatus, sources_of
from models.charges import CHARGE_API_FIELDS, Charge
from models.invoices import ItemKind
from models.sql import Dialect, literal

__all__ = [
    "BASE_FEE_DUE",
    "INVOICE_COLUMNS",
    "ITEM_RETURNING",
    "STATEMENTS",
    "TAX_COLUMNS",
    "Statement",
    "billed_events",
    "charge_json",
    "insert_base_fees",
    "insert_charge_items",
    "insert_credit_items",
    "insert_invoices",
    "item_sums",
    "lock_unbilled_charges",
    "mark_refunds_credited",
    "move_charges_to_billed",
    "plan_batches",
    "read_invoices",
    "update_invoice_totals",
    "upsert_invoice_taxes",
    "waiting_refunds",
]

# Charges the close may bill: the states from which the billing machine reaches ``billed``.
_BILLABLE = ", ".join(literal(state) for state in sources_of(BillingStatus.BILLED))
# The line's own fee is billed for a month it existed in and was not terminated before (a per-
# line selection, so it stays in SQL: in Python it would cost a row per line).
BASE_FEE_DUE = (
    "l.base_monthly_fee > 0 AND l.created_at < %(end:timestamptz)s"
    " AND (l.terminated_at IS NULL OR l.terminated_at >= %(start:timestamptz)s)"
)
_IN_BATCH = "i.period = %(period)s AND i.line_id BETWEEN %(first)s AND %(last)s"
# The batch's charges of the period still to bill, and something left of them after refunds.
_UNBILLED = (
    "c.line_id BETWEEN %(first)s AND %(last)s AND c.period = %(period)s"
    f" AND c.status = {literal(ChargeStatus.SUCCEEDED)} AND c.billing_status IN ({_BILLABLE})"
    " AND c.amount > c.refunded_amount"
)
# Refunds not yet accounted for, of the batch's charges already billed on some bill.
_TO_CREDIT = (
    f"r.credited = %(no)s AND c.billing_status NOT IN ({_BILLABLE}) AND c.line_id BETWEEN %(first)s AND %(last)s"
)
_ITEM_COLUMNS = (
    "(invoice_id, position, kind, charge_id, refund_id, merchant_id, description, amount, tax_rate, "
    "collected_amount, collection_status, paid_out_amount, billing_run_id)"
)
# What each item insert returns: the batch sums these in Python (totals, taxes, ledger, events).
ITEM_RETURNING = "RETURNING invoice_id, kind, merchant_id, charge_id, refund_id, amount, tax_rate"
_NEW_ITEM = "0, 'open', 0, %(run:varchar)s"  # nothing collected or paid out yet; the close that wrote it
INVOICE_COLUMNS = (("id", "varchar"), ("total", "bigint"), ("status", "varchar"))
TAX_COLUMNS = (("invoice_id", "varchar"), ("rate", "numeric"), ("taxable_total", "bigint"), ("tax", "bigint"))


def plan_batches(_dialect: Dialect) -> str:
    """Reads the lines cut into ranges of ``%(size)s`` in line order (one batch each); writes
    nothing."""
    return """SELECT MIN(line_id) AS first_line, MAX(line_id) AS last_line
FROM (SELECT line_id, (ROW_NUMBER() OVER (ORDER BY line_id) - 1) / %(size)s AS chunk FROM lines) AS numbered
GROUP BY chunk ORDER BY first_line"""


def insert_invoices(dialect: Dialect) -> str:
    """Writes ``invoices``: one bill per line of the batch with anything to bill (its base fee
    due, a charge, or a refund to credit), with its total as written (the fee plus the charges
    net of refunds; the items decide it in the end). Key: ``invoices (line_id, period)``, so a
    line billed by an earlier close of the period gets nothing new. Returns the bills written."""
    return f"""INSERT INTO invoices
       (id, line_id, period, status, total, amount_paid, due_date, billing_run_id, created_at)
SELECT {dialect.new_id("inv")}, l.line_id, %(period:varchar)s, {literal(InvoiceStatus.OPEN)},
       CASE WHEN {BASE_FEE_DUE} THEN l.base_monthly_fee ELSE 0 END + COALESCE(billable.amount, 0), 0,
       %(due:date)s, %(run:varchar)s, %(now:timestamptz)s
FROM lines l
LEFT JOIN (SELECT c.line_id, SUM(c.amount - c.refunded_amount) AS amount FROM charges c
           WHERE {_UNBILLED} GROUP BY c.line_id) AS billable ON billable.line_id = l.line_id
WHERE l.line_id BETWEEN %(first)s AND %(last)s AND (
    ({BASE_FEE_DUE}) OR billable.line_id IS NOT NULL
    OR EXISTS (SELECT 1 FROM refunds r JOIN charges c ON c.id = r.charge_id
               WHERE c.line_id = l.line_id AND {_TO_CREDIT}))
ON CONFLICT (line_id, period) DO NOTHING
RETURNING id, total"""


def insert_base_fees(_dialect: Dialect) -> str:
    """Writes ``invoice_items``: the line's base fee at position 0 of each of the batch's bills
    of the period whose line owes it. Key: ``invoice_items (invoice_id, position)``, so a bill
    that has its fee already gets nothing. Returns the items written."""
    return f"""INSERT INTO invoice_items {_ITEM_COLUMNS}
SELECT i.id, 0, {literal(ItemKind.BASE_FEE)}, NULL, NULL, NULL, '回線月額料金', l.base_monthly_fee, %(rate:numeric)s,
       {_NEW_ITEM}
FROM invoices i JOIN lines l ON l.line_id = i.line_id
WHERE {_IN_BATCH} AND {BASE_FEE_DUE}
ON CONFLICT (invoice_id, position) DO NOTHING
{ITEM_RETURNING}"""


def lock_unbilled_charges(dialect: Dialect) -> str | None:
    """Locks the batch's charges of the period still to bill, before anything reads them. A refund
    locks its charge too (``refund_charge``), so one committed while this batch runs is either
    seen whole by every statement after this one (netted from the item, marked credited) or waits
    for the batch and finds its charge billed (a credit on the next bill); never read by one
    statement and missed by the next (READ COMMITTED takes a snapshot per statement). ``FOR NO
    KEY UPDATE``: a refund's row only takes a key-share lock on its charge. SQLite does without:
    the batch's first write holds the database's one write lock until it commits."""
    if not dialect.postgres:
        return None
    return f"""SELECT c.id FROM charges c
WHERE c.line_id BETWEEN %(first)s AND %(last)s AND c.period = %(period)s
  AND c.status = {literal(ChargeStatus.SUCCEEDED)} AND c.billing_status IN ({_BILLABLE})
ORDER BY c.id
FOR NO KEY UPDATE OF c"""


def insert_charge_items(_dialect: Dialect) -> str:
    """Writes ``invoice_items``: one item per charge of the batch still to bill, net of what was
    refunded before the close, after what its bill already holds (on a bill this run wrote, its
    base fee or nothing; on an earlier close's bill, its last item: one lookup each). Key:
    ``invoice_items (charge_id)``: a charge is on one bill, ever. Returns the items written."""
    held = """(CASE WHEN i.billing_run_id = %(run)s THEN 0 ELSE
          COALESCE((SELECT MAX(x.position) FROM invoice_items x WHERE x.invoice_id = i.id), 0) END)"""
    return f"""INSERT INTO invoice_items {_ITEM_COLUMNS}
SELECT i.id, {held} + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY c.created_at, c.id),
       {literal(ItemKind.CHARGE)}, c.id, NULL, c.merchant_id, c.description, c.amount - c.refunded_amount,
       %(rate:numeric)s, {_NEW_ITEM}
FROM charges c JOIN invoices i ON i.line_id = c.line_id AND {_IN_BATCH}
WHERE {_UNBILLED}
ON CONFLICT (charge_id) DO NOTHING
{ITEM_RETURNING}"""


def insert_credit_items(_dialect: Dialect) -> str:
    """Writes ``invoice_items``: a credit on the batch's bill of the period for each refund of a
    charge billed on an earlier bill, at that charge's rate, after the bill's last item (this
    run's charges are on it already). Key: ``invoice_items (refund_id)``: a refund is credited
    once. Returns the items written."""
    return f"""INSERT INTO invoice_items {_ITEM_COLUMNS}
SELECT i.id,
       (SELECT COALESCE(MAX(x.position), 0) FROM invoice_items x WHERE x.invoice_id = i.id)
         + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY r.created_at, r.id),
       {literal(ItemKind.CREDIT)}, NULL, r.id, c.merchant_id, '返金 ' || c.description, -r.amount, original.tax_rate,
       {_NEW_ITEM}
FROM refunds r
JOIN charges c ON c.id = r.charge_id
JOIN invoice_items original ON original.charge_id = c.id
JOIN invoices i ON i.line_id = c.line_id AND {_IN_BATCH}
WHERE {_TO_CREDIT} AND original.invoice_id <> i.id
ON CONFLICT (refund_id) DO NOTHING
{ITEM_RETURNING}"""


def waiting_refunds(_dialect: Dialect) -> str:
    """Reads the refunds of the batch's lines not yet accounted for, with their charge's facts
    (the operation decides which are now accounted for); writes nothing."""
    return """SELECT r.id, r.charge_id, c.period, c.status, c.billing_status, c.amount, c.refunded_amount
FROM refunds r JOIN charges c ON c.id = r.charge_id
WHERE r.credited = %(no)s AND c.line_id BETWEEN %(first)s AND %(last)s"""


def mark_refunds_credited(dialect: Dialect) -> str:
    """Writes ``refunds.credited`` of the refunds in ``%(done)s``, by primary key."""
    return f"UPDATE refunds SET credited = %(yes)s WHERE {dialect.one_of('id', 'done')}"


def item_sums(dialect: Dialect) -> str:
    """Reads each earlier close's bill in ``%(earlier)s``: its items' sum per tax rate; writes
    nothing."""
    return f"""SELECT x.invoice_id, x.tax_rate, SUM(x.amount) AS amount FROM invoice_items x
WHERE {dialect.one_of("x.invoice_id", "earlier")} GROUP BY x.invoice_id, x.tax_rate"""


def read_invoices(dialect: Dialect) -> str:
    """Reads the total and status of the bills in ``%(earlier)s``; writes nothing."""
    return f"SELECT id, total, status FROM invoices WHERE {dialect.one_of('id', 'earlier')}"


def update_invoice_totals(dialect: Dialect) -> str:
    """Writes ``invoices.total`` and ``status`` from the rows ``v`` (``INVOICE_COLUMNS``: the
    figures decided in Python), by primary key."""
    return f"""UPDATE invoices SET total = v.total, status = v.status
FROM {dialect.rows("v", INVOICE_COLUMNS)} WHERE invoices.id = v.id"""


def upsert_invoice_taxes(dialect: Dialect) -> str:
    """Writes ``invoice_taxes`` from the rows ``v`` (``TAX_COLUMNS``: ``billing.tax``'s lines):
    one row per bill and rate. Key: ``invoice_taxes (invoice_id, rate)``; a row already there is
    updated only when its figures changed."""
    return f"""INSERT INTO invoice_taxes (invoice_id, rate, taxable_total, tax)
SELECT v.invoice_id, v.rate, v.taxable_total, v.tax FROM {dialect.rows("v", TAX_COLUMNS)} WHERE true
ON CONFLICT (invoice_id, rate) DO UPDATE SET taxable_total = excluded.taxable_total, tax = excluded.tax
WHERE invoice_taxes.taxable_total <> excluded.taxable_total"""


def charge_json(dialect: Dialect, alias: str = "c") -> str:
    """SQL building ``{"object": <the charge object>}`` for the charge row ``alias``, from
    ``CHARGE_API_FIELDS``, the declaration ``Charge.to_api`` reads too."""
    columns = Charge._meta.fields_db_projection  # a field's column where it differs from its name
    pairs: list[tuple[str, str]] = []
    for field in CHARGE_API_FIELDS:
        if field.attribute is None:
            pairs.append((field.name, literal(field.value or "")))
            continue
        column = f"{alias}.{columns.get(field.attribute, field.attribute)}"
        if field.kind == "json":
            column = dialect.json_column(column)
        elif field.kind == "epoch":
            column = dialect.epoch_seconds(column)
        pairs.append((field.name, column))
    return dialect.json_object([("object", dialect.json_object(pairs))])


def _events_from(dialect: Dialect, source: str) -> str:
    return f"""INSERT INTO events (id, merchant_id, type, object_id, data, created_at)
SELECT {dialect.new_id("evt")}, c.merchant_id, 'charge.billed', c.id, {charge_json(dialect)}, %(now:timestamptz)s
FROM {source}"""


def move_charges_to_billed(dialect: Dialect) -> str:
    """Writes ``charges.billing_status``: the charges in ``%(charges)s`` (those this batch put on
    a bill) move to ``billed``, by primary key, from the states the billing machine allows; on
    PostgreSQL the same statement writes each one's ``charge.billed`` event into ``events`` (id
    fresh, no key to meet), with the charge as the API shows it once billed."""
    update = (
        f"UPDATE charges SET billing_status = {literal(BillingStatus.BILLED)}"
        f" WHERE {dialect.one_of('id', 'charges')} AND billing_status IN ({_BILLABLE})"
    )
    if dialect.update_feeds_insert:
        return f"WITH c AS ({update} RETURNING *)\n{_events_from(dialect, 'c')}"
    return update


def billed_events(dialect: Dialect) -> str | None:
    """Writes ``events``: the ``charge.billed`` event of each charge in ``%(charges)s``, as the
    API shows it once billed (id fresh, no key to meet). SQLite only: on PostgreSQL
    ``move_charges_to_billed`` writes them."""
    if dialect.update_feeds_insert:
        return None
    return _events_from(dialect, f"charges c WHERE {dialect.one_of('c.id', 'charges')}")


@dataclass(frozen=True)
class Statement:
    """One statement of the close by name: ``build`` answers its template for a dialect, or
    ``None`` where the dialect does without it."""

    name: str
    build: Callable[[Dialect], str | None]


STATEMENTS: tuple[Statement, ...] = (
    Statement("plan_batches", plan_batches),
    Statement("lock_unbilled_charges", lock_unbilled_charges),
    Statement("insert_invoices", insert_invoices),
    Statement("insert_base_fees", insert_base_fees),
    Statement("insert_charge_items", insert_charge_items),
    Statement("insert_credit_items", insert_credit_items),
    Statement("waiting_refunds", waiting_refunds),
    Statement("mark_refunds_credited", mark_refunds_credited),
    Statement("item_sums", item_sums),
    Statement("read_invoices", read_invoices),
    Statement("update_invoice_totals", update_invoice_totals),
    Statement("upsert_invoice_taxes", upsert_invoice_taxes),
    Statement("move_charges_to_billed", move_charges_to_billed),
    Statement("billed_events", billed_events),
)
