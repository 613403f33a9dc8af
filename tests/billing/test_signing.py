"""The return redirect's signature: a merchant can verify it from the query alone."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from billing.signing import return_redirect, sign_return, verify_return


def test_signature_is_the_documented_hmac() -> None:
    """Hex HMAC-SHA256 over the other parameters sorted by name, joined name=value with &."""
    expected = hmac.new(b"s3cret", b"charge=ch_1&status=succeeded", hashlib.sha256).hexdigest()
    assert sign_return({"status": "succeeded", "charge": "ch_1"}, "s3cret") == expected


def test_redirect_keeps_the_merchants_own_query_and_verifies() -> None:
    """The merchant's existing parameters stay; the appended ones verify with the secret only."""
    url = return_redirect("https://shop.example/done?order=42", {"charge": "ch_1", "status": "failed"}, "k")
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["order"] == "42"
    assert verify_return({k: params[k] for k in ("charge", "status", "signature")}, "k")


def test_a_changed_status_no_longer_verifies() -> None:
    """Editing the status on the way (failed -> succeeded) breaks the signature."""
    url = return_redirect("https://shop.example/done", {"charge": "ch_1", "status": "failed"}, "k")
    params = dict(parse_qsl(urlsplit(url).query))
    params["status"] = "succeeded"
    assert not verify_return(params, "k")


@given(
    st.dictionaries(st.sampled_from(["charge", "subscription", "status"]), st.text(min_size=1), min_size=1),
    st.text(min_size=1),
)
def test_any_parameters_round_trip(params: dict[str, str], secret: str) -> None:
    """Whatever the values, signing then verifying agrees, and another secret does not."""
    signed = {**params, "signature": sign_return(params, secret)}
    assert verify_return(signed, secret)
    assert not verify_return(signed, secret + "x")
