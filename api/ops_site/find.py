"""``/ops``: one search box for a line id, a login id, a charge id, a subscription id, a merchant
id or a merchant's name; every kind that matches is shown on one page, grouped by kind.

A query that finds exactly one line (by its line id or one of its login ids) and nothing else
goes straight to that line's page (303). Every lookup is by a unique key or, for a merchant's
name, a bounded ``contains`` match; an id longer than its column never reaches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from api.ops_site.access import StaffPermission, require
from api.site.pages import render, see_other
from models.accounts import SubscriberAccount
from models.base import fits_id_column
from models.charges import Charge
from models.lines import LINE_ID_PATTERN, Line
from models.merchants import Merchant
from models.subscriptions import Subscription

__all__ = ["MAX_QUERY", "MAX_SHOWN", "Found", "routes", "search"]

routes = web.RouteTableDef()
MAX_QUERY = 200
MAX_SHOWN = 50  # merchants whose name matches; every other kind is found by a unique key
LOGIN_ID_LENGTH = 64


@dataclass
class Found:
    """What a query found, by kind (each a short list)."""

    lines: list[Line] = field(default_factory=list)
    accounts: list[SubscriberAccount] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    merchants: list[Merchant] = field(default_factory=list)
    merchants_by_name: list[Merchant] = field(default_factory=list)
    more_merchants: bool = False

    @property
    def count(self) -> int:
        """How many objects were found, of every kind."""
        kinds = (self.lines, self.accounts, self.charges, self.subscriptions, self.merchants, self.merchants_by_name)
        return sum(len(kind) for kind in kinds)

    @property
    def line_page(self) -> str | None:
        """The one line's page, when the query found one line or one ID and nothing else."""
        if self.count != 1:
            return None
        if self.lines:
            return f"/ops/lines/{self.lines[0].line_id}"
        if self.accounts:
            return f"/ops/lines/{self.accounts[0].line_id}"
        return None


def query_problem(text: str) -> str | None:
    """The problem code of a query that cannot be searched for, or None."""
    if len(text) > MAX_QUERY:
        return "query_too_long"
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        return "query_invalid"
    return None


async def search(text: str) -> Found:
    """Everything ``text`` names: a line, an ID, a charge, a subscription, a merchant (by id or name)."""
    found = Found()
    if LINE_ID_PATTERN.match(text.upper()):
        found.lines = [line for line in [await Line.get_or_none(line_id=text.upper())] if line]
    if len(text) <= LOGIN_ID_LENGTH:
        found.accounts = await SubscriberAccount.filter(login_id=text).limit(1)
    if fits_id_column(text):
        if text.startswith("ch_"):
            found.charges = await Charge.filter(id=text).limit(1)
        elif text.startswith("sub_"):
            found.subscriptions = await Subscription.filter(id=text).limit(1)
        elif text.startswith("mer_"):
            found.merchants = await Merchant.filter(id=text).limit(1)
    by_name = await Merchant.filter(name__icontains=text).order_by("name", "id").limit(MAX_SHOWN + 1)
    found.merchants_by_name = [merchant for merchant in by_name[:MAX_SHOWN] if merchant not in found.merchants]
    found.more_merchants = len(by_name) > MAX_SHOWN
    return found


@routes.get("/ops")
async def home(request: web.Request) -> web.StreamResponse:
    """The search box, and what the query found grouped by kind (one line alone: its page)."""
    require(request, StaffPermission.READ)
    text = request.query.get("q", "").strip()
    page: dict[str, object] = {"q": text, "found": None, "error": None, "names": {}}
    if not text:
        return await render(request, "ops/find.html", page)
    problem = query_problem(text)
    if problem is not None:
        page.update(q=text[:MAX_QUERY] if problem == "query_too_long" else "", error=problem)
        return await render(request, "ops/find.html", page, status=400)
    found = await search(text)
    if found.line_page is not None:
        return see_other(found.line_page)
    merchant_ids = {row.merchant_id for row in found.charges} | {row.merchant_id for row in found.subscriptions}
    names = dict(await Merchant.filter(id__in=list(merchant_ids)).values_list("id", "name")) if merchant_ids else {}
    page.update(found=found, names=names)
    return await render(request, "ops/find.html", page)
