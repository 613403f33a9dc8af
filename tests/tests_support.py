"""Request bodies several test modules share."""

from __future__ import annotations

from typing import Any

MERCHANT_BODY: dict[str, Any] = {
    "name": "ストリーム動画株式会社",
    "name_kana": "ストリームドウガ(カ",
    "bank_account": {
        "bank_code": "0001",
        "branch_code": "001",
        "account_type": "ordinary",
        "account_number": "1234567",
        "holder_kana": "ストリームドウガ(カ",
    },
}


def line_body(line_id: str, **changes: Any) -> dict[str, Any]:
    """A valid line creation body."""
    return {
        "line_id": line_id,
        "line_type": "hikari_next",
        "holder_name": "山田 太郎",
        "base_monthly_fee": 5500,
        **changes,
    }
