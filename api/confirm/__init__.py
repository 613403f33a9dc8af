"""The confirmation pages (product.md §3): the subscriber signs in and confirms or declines.

``GET /confirm/{token}`` shows what is being bought and the sign-in form; the form posts back
to the same URL; the answer is decided by the auth worker while ``/wait`` waits for it (woken
by the decision, refreshing itself every few seconds meanwhile: no JavaScript needed) and
``/status`` tells scripts; then the subscriber goes back to the merchant's ``return_url`` with
a signed status.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.http import json_response
from api.keys import SETTINGS
from api.site.pages import csrf_ok, render
from api.site.sessions import Site
from billing.errors import InvalidRequest, NotFound
from billing.signing import return_redirect
from billing.states import ChargeStatus, SubscriptionStatus
from models.camara import CamaraPayment
from models.charges import Charge
from models.merchants import Merchant
from models.operations import purchases
from models.operations.decisions import DecisionWaiters
from models.passwords import seal_password
from models.subscriptions import Subscription
from settings import Settings

__all__ = ["DECISIONS", "SITE", "client_address", "routes"]

routes = web.RouteTableDef()


async def _nobody(_user_id: str) -> None:
    return None


# Anyone holding the link may answer: no sign-in; the handler checks the form's CSRF token.
SITE = Site(name="confirm", prefix="/confirm", load_user=_nobody, sign_in_required=False)
FINAL = {"succeeded", "failed", "canceled"}
DECISIONS = web.AppKey("decisions", DecisionWaiters)
WAIT_SECONDS = 4.0  # the wait page's answer waits this long for the decision, then it refreshes
MAX_STATUS_WAIT = 10
STATUS_WAIT = re.compile(r"\d{1,2}(\.\d{1,3})?")
# A confirmation token is ``secrets.token_urlsafe``'s alphabet, at most its 64-character column.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class Purchase:
    """A charge or a subscription as the confirmation pages show it."""

    charge: Charge | None
    subscription: Subscription | None
    merchant: Merchant
    # The real merchant an aggregator named for a CAMARA payment (chargingMetaData.merchantName).
    named_merchant: str | None = None

    @property
    def monthly(self) -> bool:
        """True for a subscription."""
        return self.subscription is not None

    @property
    def target(self) -> Charge | Subscription:
        """The object the merchant created and the redirect names."""
        return self.subscription or self.charge  # type: ignore[return-value]

    async def current_charge(self) -> Charge | None:
        """The charge being decided: the charge itself, or the subscription's first month."""
        if self.subscription is None:
            return self.charge
        return await Charge.filter(subscription_id=self.subscription.id).order_by("created_at").first()

    async def status(self) -> tuple[str, str | None]:
        """(status, failure_code) in the terms of the return redirect, or a pending state."""
        if self.subscription is None:
            assert self.charge is not None  # noqa: S101 - one of the two is always set
            return self.charge.status.value, self.charge.failure_code.value if self.charge.failure_code else None
        charge = await self.current_charge()
        state = self.subscription.status
        code = charge.failure_code.value if charge is not None and charge.failure_code else None
        if state == SubscriptionStatus.REQUIRES_CONFIRMATION:
            if charge is not None and charge.status == ChargeStatus.PROCESSING:
                return "processing", None
            return "requires_confirmation", code  # invalid_credentials after a mistyped password
        if state in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
            return "succeeded", None
        return ("failed" if state == SubscriptionStatus.FAILED else "canceled"), code

    def redirect_url(self, status: str) -> str | None:
        """The signed return URL for a final status."""
        return_url = self.target.return_url
        if status not in FINAL or not return_url:
            return None
        name = "subscription" if self.monthly else "charge"
        return return_redirect(
            return_url, {name: self.target.id, "status": status}, self.merchant.return_signing_secret
        )


def see_other(location: str) -> web.Response:
    """A 303 to ``location``: after a form post, the browser follows with a GET."""
    return web.Response(status=303, headers={"Location": location})


async def _purchase(token: str) -> Purchase:
    if not TOKEN_SHAPE.fullmatch(token):  # never a lookup the column cannot hold: no such page
        raise NotFound("No such confirmation page.", code="confirmation_missing")
    charge = await Charge.get_or_none(confirmation_token=token)
    subscription = None if charge else await Subscription.get_or_none(confirmation_token=token)
    if charge is None and subscription is None:
        raise NotFound("No such confirmation page.", code="confirmation_missing")
    merchant_id = (charge or subscription).merchant_id  # type: ignore[union-attr]
    named = None
    if charge is not None and charge.expected_line_id is not None:  # only CAMARA payments name a line
        camara = await CamaraPayment.get_or_none(charge_id=charge.id)
        named = str((camara.charging_metadata or {}).get("merchantName") or "") or None if camara else None
    return Purchase(
        charge=charge, subscription=subscription, merchant=await Merchant.get(id=merchant_id), named_merchant=named
    )


def client_address(request: web.Request, settings: Settings) -> str:
    """The socket peer; behind a trusted proxy, the nearest untrusted X-Forwarded-For hop."""
    peer = request.remote or ""
    hops = [peer]
    forwarded = request.headers.get("X-Forwarded-For", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()] + hops
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not any(address in network for network in settings.trusted_proxies):
            return str(address)
    return peer


async def _form(
    request: web.Request, purchase: Purchase, *, error: str | None = None, status: int = 200, login_id: str = ""
) -> web.Response:
    """The confirmation form; ``error`` is a problem code the page puts into words."""
    context: dict[str, Any] = {
        "merchant": purchase.named_merchant or purchase.merchant.name,
        "via": purchase.merchant.name if purchase.named_merchant else None,
        "description": purchase.target.description,
        "amount": purchase.target.amount,
        "monthly": purchase.monthly,
        "error": error,
        "login_id": login_id,
        "action_url": request.path,
    }
    return await render(request, "confirm.html", context, status=status)


async def _finished(request: web.Request, purchase: Purchase) -> web.StreamResponse | None:
    """Where to send a visitor of a purchase that is no longer waiting for them."""
    status, _ = await purchase.status()
    if status == "requires_confirmation":
        return None
    if status == "processing":
        return see_other(f"{request.path.rstrip('/')}/wait")
    url = purchase.redirect_url(status)
    if url is None:
        return await render(request, "done.html", {"status": status})
    return see_other(url)


@routes.get("/confirm/{token}")
async def show_confirmation(request: web.Request) -> web.StreamResponse:
    """What is being bought, and the sign-in form with confirm and decline."""
    purchase = await _purchase(request.match_info["token"])
    finished = await _finished(request, purchase)
    if finished is not None:
        return finished
    _, failure_code = await purchase.status()
    # After a mistyped password the purchase stays open and the form says what went wrong.
    return await _form(
        request, purchase, error="invalid_credentials" if failure_code == "invalid_credentials" else None
    )


@routes.post("/confirm/{token}")
async def answer_confirmation(request: web.Request) -> web.StreamResponse:
    """Record the subscriber's answer: decline at once, or hand the sign-in to the auth worker."""
    purchase = await _purchase(request.match_info["token"])
    form = await request.post()
    login_id = str(form.get("login_id", "")).strip()
    if not await csrf_ok(request):
        return await _form(request, purchase, status=403, login_id=login_id, error="csrf")
    action = form.get("action")
    if action not in ("confirm", "decline"):
        return await _form(request, purchase, status=400, login_id=login_id, error="choose_action")
    password = str(form.get("password", ""))
    if action == "confirm" and (not login_id or not password):
        return await _form(request, purchase, status=400, login_id=login_id, error="credentials_required")
    settings: Settings = request.app[SETTINGS]
    await purchases.answer_confirmation(
        purchase.target,
        action=str(action),
        login_id=login_id,
        sealed_password=seal_password(password, settings.secret_key) if action == "confirm" else "",
        client_address=client_address(request, settings),
    )
    purchase = await _purchase(request.match_info["token"])
    finished = await _finished(request, purchase)
    return finished or see_other(f"{request.path.rstrip('/')}/wait")


async def _decided(request: web.Request, purchase: Purchase, seconds: float) -> Purchase:
    """``purchase`` once the auth worker has decided it, or as it stands after ``seconds``: the
    request waits to be woken by the decision (``models.operations.decisions``), not polling."""
    if seconds <= 0 or (await purchase.status())[0] != "processing":
        return purchase
    charge = await purchase.current_charge()
    if charge is None:
        return purchase
    async with request.app[DECISIONS].waiting(charge.id) as wait:
        purchase = await _purchase(request.match_info["token"])  # decided before we registered?
        if (await purchase.status())[0] == "processing":
            await wait(seconds)
            purchase = await _purchase(request.match_info["token"])
    return purchase


@routes.get("/confirm/{token}/wait")
async def wait_for_decision(request: web.Request) -> web.StreamResponse:
    """Answers once the decision is in (or after a few seconds, then refreshes itself), and
    then goes back to the merchant."""
    purchase = await _decided(request, await _purchase(request.match_info["token"]), WAIT_SECONDS)
    status, _ = await purchase.status()
    if status == "requires_confirmation":
        return see_other(request.path.removesuffix("/wait"))
    if status in FINAL or status == ChargeStatus.RESERVED:  # reserved: the subscriber's part is done
        finished = await _finished(request, purchase)
        assert finished is not None  # noqa: S101 - a final status always has somewhere to go
        return finished
    return await render(request, "wait.html", {"status_url": request.path.removesuffix("/wait") + "/status"})


@routes.get("/confirm/{token}/status")
async def decision_status(request: web.Request) -> web.Response:
    """``{status, failure_code, redirect_url}`` for scripts polling the decision; with
    ``?wait=N`` (seconds, at most 10) it answers once the decision is in, or after N seconds."""
    wait = request.query.get("wait", "0")
    if not STATUS_WAIT.fullmatch(wait) or float(wait) > MAX_STATUS_WAIT:
        error = InvalidRequest(f"wait must be a number of seconds from 0 to {MAX_STATUS_WAIT}.", param="wait")
        return json_response(error.as_dict(), status=error.status)  # JSON, like the answer it replaces
    purchase = await _decided(request, await _purchase(request.match_info["token"]), float(wait))
    status, failure_code = await purchase.status()
    return json_response(
        {"status": status, "failure_code": failure_code, "redirect_url": purchase.redirect_url(status)}
    )
