"""Tortoise models, one module per aggregate; the schema is built only by migrations."""

MODEL_MODULES = [
    "models.clock",
    "models.lines",
    "models.accounts",
    "models.merchants",
    "models.charges",
    "models.subscriptions",
    "models.invoices",
    "models.payouts",
    "models.ledger",
    "models.events",
    "models.outbox",
    "models.audit_log",
    "models.site_sessions",
    "models.scheduler_jobs",
    "models.camara",
    "models.oauth",
]
