"""Zengin (全銀協) character rules and the bank and branch code check.

Zengin files take one single-byte character set: digits, upper-case letters, half-width
katakana, space and ``( ) - . / ,``. Small kana become large, ``ｰ`` becomes ``-``.
"""

from __future__ import annotations

import jaconv
import zengin_code

__all__ = ["KANA_INPUT_PATTERN", "ZENGIN_CHARACTERS", "UnknownBank", "check_bank_branch", "to_zengin_kana"]

_DIGITS = "0123456789"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_KANA = "ｦｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝﾞﾟ"
ZENGIN_CHARACTERS = frozenset(_DIGITS + _LETTERS + _KANA + " ()-./,\\")
_SMALL_TO_LARGE = str.maketrans("ｧｨｩｪｫｬｭｮｯｰ", "ｱｲｳｴｵﾔﾕﾖﾂ-")
# Exactly the characters ``to_zengin_kana`` takes (hiragana, katakana, full- and half-width
# ASCII, a few letters whose upper case is ASCII), as a JSON Schema pattern for the documents;
# tests/api/test_openapi_contract.py recomputes it character by character.
KANA_INPUT_PATTERN = (
    "^[\\u0020\\u0028-\\u0029\\u002c-\\u0039\\u0041-\\u005a\\u005c\\u0061-\\u007a\\u00df\\u0131\\u017f"
    "\\u3000\\u3041-\\u308d\\u308f\\u3092-\\u3094\\u30a1-\\u30ed\\u30ef\\u30f2-\\u30f4\\u30fc"
    "\\ufb00-\\ufb06\\uff08-\\uff09\\uff0c-\\uff19\\uff21-\\uff3a\\uff3c\\uff41-\\uff5a\\uff66-\\uff9f]+$"
)


class UnknownBank(ValueError):
    """A bank or branch code that is not in the Zengin code list."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def to_zengin_kana(text: str) -> str:
    """Half-width, upper-case, large-kana form of ``text``; ``ValueError`` names a character
    that has no Zengin form (kanji, hiragana are converted to katakana first)."""
    katakana = jaconv.hira2kata(text)
    half = jaconv.z2h(katakana, kana=True, ascii=True, digit=True).upper().translate(_SMALL_TO_LARGE)
    half = half.replace("\u3000", " ")
    bad = list(dict.fromkeys(char for char in half if char not in ZENGIN_CHARACTERS))
    if bad:
        raise ValueError(f"has characters a Zengin file cannot carry: {''.join(bad)}")
    return half


def check_bank_branch(bank_code: str, branch_code: str) -> tuple[str, str]:
    """The bank's and branch's kana names; ``UnknownBank`` if either code is not listed."""
    bank = zengin_code.Bank.all.get(bank_code)
    if bank is None:
        raise UnknownBank(f"bank code {bank_code} is not in the Zengin code list", field="bank_code")
    branch = bank.branches.get(branch_code)
    if branch is None:
        raise UnknownBank(
            f"branch {branch_code} of bank {bank_code} is not in the Zengin code list", field="branch_code"
        )
    return bank.kana, branch.kana
