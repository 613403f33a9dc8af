"""Zengin character rules and the bank/branch code list (zengin.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.zengin import ZENGIN_CHARACTERS, UnknownBank, check_bank_branch, to_zengin_kana


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("カブシキガイシャ　テスト", "ｶﾌﾞｼｷｶﾞｲｼﾔ ﾃｽﾄ"),
        ("ストリームドウガ(カ", "ｽﾄﾘ-ﾑﾄﾞｳｶﾞ(ｶ"),
        ("ｷｯﾄ", "ｷﾂﾄ"),
        ("abc-123", "ABC-123"),
        ("さくら", "ｻｸﾗ"),
    ],
)
def test_names_become_zengin_kana(text: str, expected: str) -> None:
    """Full-width, hiragana, small kana, long vowels and lower case all reach the Zengin form."""
    assert to_zengin_kana(text) == expected


def test_kanji_is_refused() -> None:
    """Kanji has no Zengin form: the error names the characters."""
    with pytest.raises(ValueError, match="株式"):
        to_zengin_kana("株式")


KATAKANA = (
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン"
    "ァィゥェォャュョッー ガギグゲゴパピプペポ"
)


@given(st.text(alphabet=KATAKANA))
def test_any_katakana_converts_into_the_character_set(text: str) -> None:
    """Whatever katakana goes in, only Zengin characters come out."""
    assert set(to_zengin_kana(text)) <= ZENGIN_CHARACTERS


def test_bank_and_branch_codes_are_checked() -> None:
    """Listed codes give their kana names; an unknown bank or branch names the field."""
    bank, branch = check_bank_branch("0001", "001")
    assert bank
    assert branch
    with pytest.raises(UnknownBank) as caught:
        check_bank_branch("9998", "001")
    assert caught.value.field == "bank_code"
    with pytest.raises(UnknownBank) as caught:
        check_bank_branch("0001", "999")
    assert caught.value.field == "branch_code"
