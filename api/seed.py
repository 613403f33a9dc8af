"""The demo ``matomete up`` seeds into an empty database, and the welcome it prints.

The demo's secrets (API key, password) are stored hashed like any other, so the plain values
are kept in ``matomete.demo.json`` beside the database to be printed again on every start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from models.accounts import DEFAULT_ACCOUNT_LIMIT, AccountStatus, SubscriberAccount
from models.audit_log import SYSTEM
from models.clock import clock
from models.lines import Line, LineSession, LineType
from models.merchants import BankAccount, FeePlan, Merchant
from models.operations.merchants import issue_api_key
from models.operations.site_users import create_merchant_user
from models.operations.staff import create_staff
from models.passwords import generate_password, hash_password
from settings import Settings

__all__ = ["seed_demo", "welcome_text"]

DEMO_FILE = "matomete.demo.json"
DEMO_LINE = "CAF0000000001"
DEMO_LOGIN = "demo"
DEMO_MERCHANT_USER = "admin@demo.example.jp"
DEMO_OPERATOR = "operator@carrier.example.jp"
DEMO_LINE_BODY = json.dumps(
    {"line_id": "CAF0000000002", "line_type": "hikari_next", "holder_name": "山田 花子", "base_monthly_fee": 5500},
    ensure_ascii=False,
)


async def seed_demo(settings: Settings) -> dict[str, Any]:
    """Seed a demo merchant, line (sessions for 127.0.0.1 and ::1) and ID into an empty
    database; either way, the demo's details for the welcome text."""
    path = settings.state_dir / DEMO_FILE
    if await Merchant.exists() or await Line.exists():
        demo = json.loads(path.read_text()) if path.exists() else {}
        changed = False
        if demo and "merchant_user_email" not in demo:  # seeded before the merchant site existed
            demo.update(await _seed_merchant_user(demo["merchant_id"]))
            changed = True
        if demo and "operator_email" not in demo:  # seeded before the console existed
            demo.update(await _seed_operator())
            changed = True
        if changed:
            _write_private(path, json.dumps(demo, indent=2))
        return demo
    now = await clock.now()
    password = generate_password()
    password_hash = await hash_password(password)
    async with in_transaction():
        merchant = await Merchant.create(
            name="デモ動画ストア", name_kana="ﾃﾞﾓﾄﾞｳｶﾞｽﾄｱ", return_signing_secret=os.urandom(32).hex(), created_at=now
        )
        await BankAccount.create(
            merchant=merchant,
            bank_code="0001",
            branch_code="001",
            account_type="ordinary",
            account_number="1234567",
            holder_kana="ﾃﾞﾓﾄﾞｳｶﾞｽﾄｱ",
            updated_at=now,
        )
        await FeePlan.create(
            merchant=merchant, effective_from="2000-01", rate="0.05", threshold=600, per_line_amount="31.5"
        )
        _, api_key = await issue_api_key(merchant)
        line = await Line.create(
            line_id=DEMO_LINE,
            line_type=LineType.HIKARI_NEXT,
            holder_name="デモ 太郎",
            base_monthly_fee=5500,
            created_at=now,
            updated_at=now,
        )
        await LineSession.create(line=line, address="127.0.0.1", network="127.0.0.1/32", family=4, started_at=now)
        await LineSession.create(line=line, address="::1", network="::1/128", family=6, started_at=now)
        await SubscriberAccount.create(
            login_id=DEMO_LOGIN,
            line=line,
            slot=1,
            password_hash=password_hash,
            monthly_limit=DEFAULT_ACCOUNT_LIMIT,
            status=AccountStatus.ACTIVE,
            created_at=now,
        )
    demo = {
        "merchant_id": merchant.id,
        "api_key": api_key,
        "return_signing_secret": merchant.return_signing_secret,
        "line_id": DEMO_LINE,
        "login_id": DEMO_LOGIN,
        "password": password,
        **await _seed_merchant_user(merchant.id),
        **await _seed_operator(),
    }
    _write_private(path, json.dumps(demo, indent=2))
    return demo


async def _seed_merchant_user(merchant_id: str) -> dict[str, str]:
    """An admin of the demo merchant for the data management site ``/merchant``."""
    user, password = await create_merchant_user(
        merchant_id, email=DEMO_MERCHANT_USER, name="デモ 管理者", role="admin", actor=SYSTEM
    )
    return {"merchant_user_email": user.email, "merchant_user_password": password}


async def _seed_operator() -> dict[str, str]:
    """An admin of the operator console ``/ops``."""
    user, password = await create_staff(DEMO_OPERATOR, name="デモ オペレータ", role="admin", actor=SYSTEM)
    return {"operator_email": user.email, "operator_password": password}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def welcome_text(settings: Settings, demo: dict[str, Any]) -> str:
    """What a newcomer needs to try the platform from a second terminal."""
    base = settings.base_url
    lines = [
        "",
        f"Matomete is up at {base}   (Ctrl-C stops it; data stays in {settings.database_url})",
        "",
        f"  ops token          {settings.ops_token}",
    ]
    if demo:
        lines += [
            f"  demo merchant      {demo['merchant_id']}",
            f"  merchant API key   {demo['api_key']}",
            f"  demo line          {demo['line_id']} (sessions open for 127.0.0.1 and ::1)",
            f"  subscriber ID      {demo['login_id']}   password {demo['password']}",
            f"  merchant site      {base}/merchant",
            f"  merchant user      {demo['merchant_user_email']}   password {demo['merchant_user_password']}",
            f"  support centre     {base}/ops",
            f"  operator (admin)   {demo['operator_email']}   password {demo['operator_password']}",
        ]
    if demo:
        charge = json.dumps(
            {"amount": 500, "description": "デモ動画 48時間レンタル", "return_url": f"{base}/demo/return"},
            ensure_ascii=False,
        )
        lines += [
            "",
            "Walk a purchase: create a charge, open its confirmation_url in a browser on this machine,",
            f"sign in as {demo['login_id']} / {demo['password']} and press 支払う:",
            f"  curl -s -X POST {base}/v1/charges -H 'Authorization: Bearer {demo['api_key']}' \\",
            "       -H 'Content-Type: application/json' \\",
            f"       -d '{charge}'",
        ]
    lines += [
        "",
        "Provision a line with the ops API:",
        f"  curl -s -X POST {base}/ops/v1/lines -H 'Authorization: Bearer {settings.ops_token}' \\",
        "       -H 'Content-Type: application/json' \\",
        "       -d '" + DEMO_LINE_BODY + "'",
        "",
        f"API reference: {base}/v1/docs (merchant), {base}/ops/v1/openapi.json (operator)",
        "",
    ]
    return "\n".join(lines)
