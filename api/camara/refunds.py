"""``/carrier-billing-refund/v0.3``: createRefund, retrieveRefunds, retrieveRefund and
retrievePaymentRemainingAmount over ``models.operations.camara``."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
