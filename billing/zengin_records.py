"""Zengin (全銀協) fixed-length records (zengin.md): the 総合振込 file we write for payouts, and
the 口座振替 result file the bank sends back about line bills.

Every record is 120 bytes of one single-byte character set (cp932's single-byte part): N fields
right-aligned and zero-filled, C fields left-aligned and space-filled. Names are converted with
``to_zengin_kana`` and cut to their field's width. A file is a header, its data records and a
trailer, then one end record; records are separated by CRLF or written back to back.

Writing refuses a value that does not fit its field with ``ValueError`` naming the field.
Reading refuses a whole file with ``ZenginFormatError`` naming the record and the reason: a
record of the wrong length or kind, records out of order, a field that is not what its type
says, or a trailer whose counts and sums differ from the data records. Nothing of a refused
file is returned, so nothing of it can be applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from billing.errors import InvalidRequest
from billing.zengin import to_zengin_kana

__all__ = [
    "DEBIT_RESULT_CODES",
    "LAYOUTS",
    "RECORD_LENGTH",
    "DebitResult",
    "Payee",
    "Payer",
    "TransferFile",
    "ZenginFormatError",
    "read_debit_results",
    "read_transfer_file",
    "transfer_file",
]

RECORD_LENGTH = 120
ENCODING = "cp932"
SEPARATORS = (b"\r\n", b"")
TRANSFER_TYPE_CODE = "21"
DEBIT_TYPE_CODE = "91"
CODE_DIVISION_JIS = "0"
HEADER, DATA, TRAILER, END = "1", "2", "8", "9"

PAYER_ACCOUNT_TYPES = (1, 2)  # 普通, 当座
PAYEE_ACCOUNT_TYPES = (1, 2, 4)  # 普通, 当座, 貯蓄
NEW_CODES = (0, 1, 2)  # other, first transfer, changed
TRANSFER_KINDS = (7, 8)  # telegraphic, document
# 振替結果コード: 0 debited, 1 insufficient funds, 2 no such account, 3 stopped by the holder,
# 4 no debit authorisation, 8 stopped by the biller, 9 other
DEBIT_RESULT_CODES = (0, 1, 2, 3, 4, 8, 9)
DEBITED = 0

MAX_AMOUNT = 9_999_999_999  # 振込金額 N10
MAX_RECORDS = 999_999  # 合計件数 N6

# Layouts as (field, type, bytes); the field names are for error messages and parsing.
_Layout = tuple[tuple[str, str, int], ...]
_HEADER_LAYOUT: _Layout = (
    ("データ区分", "N", 1),
    ("種別コード", "N", 2),
    ("コード区分", "N", 1),
    ("依頼人コード", "N", 10),
    ("依頼人名", "C", 40),
    ("取組日", "N", 4),
    ("銀行番号", "N", 4),
    ("銀行名", "C", 15),
    ("支店番号", "N", 3),
    ("支店名", "C", 15),
    ("預金種目", "N", 1),
    ("口座番号", "N", 7),
    ("ダミー", "C", 17),
)
_TRANSFER_DATA_LAYOUT: _Layout = (
    ("データ区分", "N", 1),
    ("被仕向銀行番号", "N", 4),
    ("被仕向銀行名", "C", 15),
    ("被仕向支店番号", "N", 3),
    ("被仕向支店名", "C", 15),
    ("手形交換所番号", "C", 4),  # spaces or zeros: checked on its own
    ("預金種目", "N", 1),
    ("口座番号", "N", 7),
    ("受取人名", "C", 30),
    ("振込金額", "N", 10),
    ("新規コード", "N", 1),
    ("顧客コード", "C", 20),  # two N10 codes, or one EDI text when 識別表示 is Y: checked on its own
    ("振込指定区分", "N", 1),
    ("識別表示", "C", 1),
    ("ダミー", "C", 7),
)
_TRANSFER_TRAILER_LAYOUT: _Layout = (
    ("データ区分", "N", 1),
    ("合計件数", "N", 6),
    ("合計金額", "N", 12),
    ("ダミー", "C", 101),
)
_DEBIT_DATA_LAYOUT: _Layout = (
    ("データ区分", "N", 1),
    ("引落銀行番号", "N", 4),
    ("引落銀行名", "C", 15),
    ("引落支店番号", "N", 3),
    ("引落支店名", "C", 15),
    ("ダミー", "C", 4),
    ("預金種目", "N", 1),
    ("口座番号", "N", 7),
    ("預金者名", "C", 30),
    ("引落金額", "N", 10),
    ("新規コード", "N", 1),
    ("顧客番号", "C", 20),
    ("振替結果コード", "N", 1),
    ("ダミー", "C", 8),
)
_DEBIT_TRAILER_LAYOUT: _Layout = (
    ("データ区分", "N", 1),
    ("合計件数", "N", 6),
    ("合計金額", "N", 12),
    ("振替済件数", "N", 6),
    ("振替済金額", "N", 12),
    ("振替不能件数", "N", 6),
    ("振替不能金額", "N", 12),
    ("ダミー", "C", 65),
)
_END_LAYOUT: _Layout = (("データ区分", "N", 1), ("ダミー", "C", 119))
LAYOUTS: dict[str, _Layout] = {
    "header": _HEADER_LAYOUT,
    "transfer_data": _TRANSFER_DATA_LAYOUT,
    "transfer_trailer": _TRANSFER_TRAILER_LAYOUT,
    "debit_data": _DEBIT_DATA_LAYOUT,
    "debit_trailer": _DEBIT_TRAILER_LAYOUT,
    "end": _END_LAYOUT,
}


class ZenginFormatError(InvalidRequest):
    """A Zengin file that breaks its layout; ``record`` is the 1-based record number, if any."""

    code = "zengin_file_invalid"

    def __init__(self, reason: str, *, record: int | None = None) -> None:
        super().__init__(reason if record is None else f"record {record}: {reason}", param="file")
        self.reason = reason
        self.record = record


@dataclass(frozen=True, kw_only=True)
class Payer:
    """The paying company (依頼人) and the account the transfers are drawn from.

    Codes are strings of exactly their field's digits: ``code`` 10 (given by the bank),
    ``bank_code`` 4, ``branch_code`` 3, ``account_number`` 7. ``account_type``: 1 普通, 2 当座.
    """

    code: str
    name: str
    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    bank_name: str = ""
    branch_name: str = ""


@dataclass(frozen=True, kw_only=True)
class Payee:
    """One transfer: the receiving account, its holder's kana name, and the amount in yen.

    ``account_type``: 1 普通, 2 当座, 4 貯蓄. ``customer_code1``/``customer_code2`` carry our payout
    reference (up to 10 digits each); with ``edi_info`` set instead, the 20 bytes carry that text
    and 識別表示 is ``Y``. ``transfer_kind``: 7 telegraphic, 8 document.
    """

    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    name: str
    amount: int
    bank_name: str = ""
    branch_name: str = ""
    new_code: int = 0
    customer_code1: int = 0
    customer_code2: int = 0
    edi_info: str | None = None
    transfer_kind: int = 7


@dataclass(frozen=True, kw_only=True)
class TransferFile:
    """A 総合振込 file as read: the file carries the transfer date as month and day only."""

    payer: Payer
    transfer_month: int
    transfer_day: int
    payees: tuple[Payee, ...]

    @property
    def total_amount(self) -> int:
        """The sum of the transfers, as the trailer states it."""
        return sum(payee.amount for payee in self.payees)


@dataclass(frozen=True, kw_only=True)
class DebitResult:
    """One line bill's debit: our invoice reference (顧客番号), the amount, the 振替結果コード."""

    customer_number: str
    amount: int
    result_code: int

    @property
    def debited(self) -> bool:
        """True when the bank took the money (result code 0)."""
        return self.result_code == DEBITED


# --- writing -------------------------------------------------------------------------------


def transfer_file(payer: Payer, transfer_date: date, payees: Sequence[Payee], *, separator: bytes = b"\r\n") -> bytes:
    """The 総合振込 file paying ``payees`` from ``payer``'s account on ``transfer_date``: header,
    one data record per payee, trailer (count and sum), end; each record followed by
    ``separator`` (CRLF, or ``b""`` for back-to-back records)."""
    if separator not in SEPARATORS:
        raise ValueError(f"the record separator is CRLF or nothing, not {separator!r}")
    if not payees:
        raise ValueError("a transfer file needs at least one payee")
    if len(payees) > MAX_RECORDS:
        raise ValueError(f"a transfer file holds at most {MAX_RECORDS} payees, not {len(payees)}")
    records = [_header_record(payer, transfer_date)]
    records.extend(_data_record(payee, index) for index, payee in enumerate(payees, start=1))
    total = sum(payee.amount for payee in payees)
    records.append(_record([TRAILER, _number(len(payees), 6, "合計件数"), _number(total, 12, "合計金額"), " " * 101]))
    records.append(_record([END, " " * 119]))
    return b"".join(record + separator for record in records)


def _header_record(payer: Payer, transfer_date: date) -> bytes:
    if payer.account_type not in PAYER_ACCOUNT_TYPES:
        raise ValueError(f"payer 預金種目 is one of {PAYER_ACCOUNT_TYPES}, not {payer.account_type}")
    return _record(
        [
            HEADER,
            TRANSFER_TYPE_CODE,
            CODE_DIVISION_JIS,
            _digits(payer.code, 10, "依頼人コード"),
            _text(payer.name, 40, "依頼人名"),
            f"{transfer_date.month:02d}{transfer_date.day:02d}",
            _digits(payer.bank_code, 4, "仕向銀行番号"),
            _text(payer.bank_name, 15, "仕向銀行名"),
            _digits(payer.branch_code, 3, "仕向支店番号"),
            _text(payer.branch_name, 15, "仕向支店名"),
            str(payer.account_type),
            _digits(payer.account_number, 7, "口座番号"),
            " " * 17,
        ]
    )


def _data_record(payee: Payee, index: int) -> bytes:
    where = f"payee {index}"
    checks = (
        ("預金種目", payee.account_type, PAYEE_ACCOUNT_TYPES),
        ("新規コード", payee.new_code, NEW_CODES),
        ("振込指定区分", payee.transfer_kind, TRANSFER_KINDS),
    )
    for field, value, allowed in checks:
        if value not in allowed:
            raise ValueError(f"{where}: {field} is one of {allowed}, not {value}")
    if not 0 < payee.amount <= MAX_AMOUNT:
        raise ValueError(f"{where}: 振込金額 is 1 to {MAX_AMOUNT} yen, not {payee.amount}")
    if payee.edi_info is None:
        codes = _number(payee.customer_code1, 10, f"{where} 顧客コード1") + _number(
            payee.customer_code2, 10, f"{where} 顧客コード2"
        )
        mark = " "
    else:
        if payee.customer_code1 or payee.customer_code2:
            raise ValueError(f"{where}: EDI information replaces the 顧客コード; give one or the other")
        codes = _text(payee.edi_info, 20, f"{where} EDI情報")
        mark = "Y"
    return _record(
        [
            DATA,
            _digits(payee.bank_code, 4, f"{where} 被仕向銀行番号"),
            _text(payee.bank_name, 15, f"{where} 被仕向銀行名"),
            _digits(payee.branch_code, 3, f"{where} 被仕向支店番号"),
            _text(payee.branch_name, 15, f"{where} 被仕向支店名"),
            "0000",  # 手形交換所番号: unused for transfers
            str(payee.account_type),
            _digits(payee.account_number, 7, f"{where} 口座番号"),
            _text(payee.name, 30, f"{where} 受取人名"),
            _number(payee.amount, 10, f"{where} 振込金額"),
            str(payee.new_code),
            codes,
            str(payee.transfer_kind),
            mark,
            " " * 7,
        ]
    )


def _digits(value: str, width: int, field: str) -> str:
    """A code field: exactly ``width`` ASCII digits, kept as given."""
    if len(value) != width or not (value.isascii() and value.isdigit()):
        raise ValueError(f"{field} is {width} digits, not {value!r}")
    return value


def _number(value: int, width: int, field: str) -> str:
    """An N field: right-aligned, zero-filled."""
    if not 0 <= value < 10**width:
        raise ValueError(f"{field} does not fit {width} digits: {value}")
    return f"{value:0{width}d}"


def _text(value: str, width: int, field: str) -> str:
    """A C field: Zengin kana, cut to ``width`` and space-filled."""
    try:
        kana = to_zengin_kana(value)
    except ValueError as error:
        raise ValueError(f"{field} {error}") from error
    return kana[:width].ljust(width)


def _record(fields: list[str]) -> bytes:
    encoded = "".join(fields).encode(ENCODING)
    if len(encoded) != RECORD_LENGTH:
        # to_zengin_kana only lets single-byte characters through; this guards the layouts
        raise ValueError(f"a record came to {len(encoded)} bytes, not {RECORD_LENGTH}")
    return encoded


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    number: int
    text: str


@dataclass(frozen=True)
class _Group:
    header: _Record
    data: tuple[_Record, ...]
    trailer: _Record


def read_transfer_file(data: bytes) -> TransferFile:
    """The payer, date and payees of a 総合振込 file, after every check of the module docstring.
    The file carries one header-data-trailer group (one payer account)."""
    groups = _groups(_records(data), TRANSFER_TYPE_CODE)
    if len(groups) > 1:
        raise ZenginFormatError("a second header: a transfer file carries one payer", record=groups[1].header.number)
    group = groups[0]
    payer, month, day = _read_transfer_header(group.header)
    payees = tuple(_read_payee(record) for record in group.data)
    trailer = _fields(group.trailer, _TRANSFER_TRAILER_LAYOUT)
    _check_total(group.trailer, "合計", trailer, len(payees), sum(payee.amount for payee in payees))
    return TransferFile(payer=payer, transfer_month=month, transfer_day=day, payees=payees)


def read_debit_results(data: bytes) -> list[DebitResult]:
    """Every data record of a 口座振替 result file, after every check of the module docstring.
    A file may carry several header-data-trailer groups; each trailer is checked against its own
    group, including the debited (振替済) and failed (振替不能) counts and sums."""
    results: list[DebitResult] = []
    for group in _groups(_records(data), DEBIT_TYPE_CODE):
        group_results = [_read_debit(record) for record in group.data]
        debited = [result.amount for result in group_results if result.debited]
        failed = [result.amount for result in group_results if not result.debited]
        trailer = _fields(group.trailer, _DEBIT_TRAILER_LAYOUT)
        _check_total(group.trailer, "合計", trailer, len(group_results), sum(debited) + sum(failed))
        _check_total(group.trailer, "振替済", trailer, len(debited), sum(debited))
        _check_total(group.trailer, "振替不能", trailer, len(failed), sum(failed))
        results.extend(group_results)
    return results


def _records(data: bytes) -> list[_Record]:
    """The file cut into records: CRLF-separated (a final CRLF optional) or back to back."""
    if not data:
        raise ZenginFormatError("the file is empty")
    if b"\r" in data or b"\n" in data:
        pieces = data.split(b"\r\n")
        if pieces[-1] == b"":
            pieces.pop()
    elif len(data) % RECORD_LENGTH:
        raise ZenginFormatError(f"the file is {len(data)} bytes, not a whole number of {RECORD_LENGTH}-byte records")
    else:
        pieces = [data[start : start + RECORD_LENGTH] for start in range(0, len(data), RECORD_LENGTH)]
    records = []
    for number, piece in enumerate(pieces, start=1):
        if len(piece) != RECORD_LENGTH:
            raise ZenginFormatError(f"is {len(piece)} bytes, not {RECORD_LENGTH}", record=number)
        try:
            text = piece.decode(ENCODING)
        except UnicodeDecodeError:
            raise ZenginFormatError("has bytes outside the Zengin character set", record=number) from None
        if len(text) != RECORD_LENGTH:
            raise ZenginFormatError("has double-byte characters; Zengin records are single-byte", record=number)
        if not all(_single_byte_character(char) for char in text):
            raise ZenginFormatError("has bytes outside the Zengin character set", record=number)
        records.append(_Record(number, text))
    return records


def _single_byte_character(char: str) -> bool:
    """Printable ASCII or half-width katakana: what a bank's file may carry. The reader is wider
    than ``ZENGIN_CHARACTERS`` (which the writer keeps to) but refuses control characters and the
    bytes cp932 maps to private-use characters (0x80, 0xA0, 0xFD-0xFF)."""
    return " " <= char <= "~" or "\uff61" <= char <= "\uff9f"


def _groups(records: list[_Record], type_code: str) -> list[_Group]:
    """Header, data records, trailer, repeated; then the end record, last."""
    groups: list[_Group] = []
    header: _Record | None = None
    data: list[_Record] = []
    for record in records:
        kind = record.text[0]
        if header is not None:
            if kind == DATA:
                data.append(record)
            elif kind == TRAILER:
                groups.append(_Group(header, tuple(data), record))
                header, data = None, []
            else:
                raise ZenginFormatError(
                    f"expected a data record (2) or the trailer (8), found {kind!r}", record=record.number
                )
        elif kind == HEADER:
            _check_header_kind(record, type_code)
            header = record
        elif kind == END and groups:
            if record.number != len(records):
                raise ZenginFormatError("records follow the end record (9)", record=record.number + 1)
            _fields(record, _END_LAYOUT)
            return groups
        else:
            expected = "the header (1) or the end record (9)" if groups else "the header (1)"
            raise ZenginFormatError(f"expected {expected}, found {kind!r}", record=record.number)
    raise ZenginFormatError("the file ends without its trailer (8) and end record (9)")


def _check_header_kind(record: _Record, type_code: str) -> None:
    fields = _fields(record, _HEADER_LAYOUT)
    if fields["種別コード"] != type_code:
        raise ZenginFormatError(
            f"種別コード is {fields['種別コード']}, this reader takes {type_code}", record=record.number
        )
    if fields["コード区分"] != CODE_DIVISION_JIS:
        raise ZenginFormatError(f"コード区分 is {fields['コード区分']}, only 0 (JIS) is read", record=record.number)


def _fields(record: _Record, layout: _Layout) -> dict[str, str]:
    """The record's fields by name, C fields with trailing spaces removed; every N field must be
    all digits. A name used twice (ダミー) keeps its last value, which nothing reads."""
    fields: dict[str, str] = {}
    start = 0
    for name, kind, width in layout:
        value = record.text[start : start + width]
        start += width
        if kind == "N":
            if not (value.isascii() and value.isdigit()):
                raise ZenginFormatError(f"{name} is numeric, found {value!r}", record=record.number)
            fields[name] = value
        else:
            fields[name] = value.rstrip(" ")
    return fields


def _one_of(record: _Record, fields: dict[str, str], name: str, allowed: tuple[int, ...]) -> int:
    value = int(fields[name])
    if value not in allowed:
        raise ZenginFormatError(f"{name} is {value}, expected one of {allowed}", record=record.number)
    return value


def _read_transfer_header(record: _Record) -> tuple[Payer, int, int]:
    fields = _fields(record, _HEADER_LAYOUT)
    month, day = int(fields["取組日"][:2]), int(fields["取組日"][2:])
    try:
        date(2000, month, day)  # a leap year, so that 0229 is a real month and day
    except ValueError:
        raise ZenginFormatError(f"取組日 {fields['取組日']} is not a month and day", record=record.number) from None
    payer = Payer(
        code=fields["依頼人コード"],
        name=fields["依頼人名"],
        bank_code=fields["銀行番号"],
        bank_name=fields["銀行名"],
        branch_code=fields["支店番号"],
        branch_name=fields["支店名"],
        account_type=_one_of(record, fields, "預金種目", PAYER_ACCOUNT_TYPES),
        account_number=fields["口座番号"],
    )
    return payer, month, day


def _read_payee(record: _Record) -> Payee:
    fields = _fields(record, _TRANSFER_DATA_LAYOUT)
    if fields["手形交換所番号"] not in ("", "0000"):
        raise ZenginFormatError(
            f"手形交換所番号 is spaces or zeros, found {fields['手形交換所番号']!r}", record=record.number
        )
    codes = fields["顧客コード"]
    mark = fields["識別表示"]
    edi_info: str | None = None
    code1 = code2 = 0
    if mark == "Y":
        edi_info = codes
    elif mark == "":
        if len(codes) != 20 or not (codes.isascii() and codes.isdigit()):
            raise ZenginFormatError(f"顧客コード is numeric without 識別表示 Y, found {codes!r}", record=record.number)
        code1, code2 = int(codes[:10]), int(codes[10:])
    else:
        raise ZenginFormatError(f"識別表示 is a space or Y, found {mark!r}", record=record.number)
    amount = int(fields["振込金額"])
    if amount == 0:
        raise ZenginFormatError("振込金額 is zero", record=record.number)
    return Payee(
        bank_code=fields["被仕向銀行番号"],
        bank_name=fields["被仕向銀行名"],
        branch_code=fields["被仕向支店番号"],
        branch_name=fields["被仕向支店名"],
        account_type=_one_of(record, fields, "預金種目", PAYEE_ACCOUNT_TYPES),
        account_number=fields["口座番号"],
        name=fields["受取人名"],
        amount=amount,
        new_code=_one_of(record, fields, "新規コード", NEW_CODES),
        customer_code1=code1,
        customer_code2=code2,
        edi_info=edi_info,
        transfer_kind=_one_of(record, fields, "振込指定区分", TRANSFER_KINDS),
    )


def _read_debit(record: _Record) -> DebitResult:
    fields = _fields(record, _DEBIT_DATA_LAYOUT)
    return DebitResult(
        customer_number=fields["顧客番号"],
        amount=int(fields["引落金額"]),
        result_code=_one_of(record, fields, "振替結果コード", DEBIT_RESULT_CODES),
    )


def _check_total(record: _Record, label: str, trailer: dict[str, str], count: int, amount: int) -> None:
    stated_count, stated_amount = int(trailer[f"{label}件数"]), int(trailer[f"{label}金額"])
    if stated_count != count:
        raise ZenginFormatError(
            f"the trailer's {label}件数 is {stated_count}, the data records number {count}", record=record.number
        )
    if stated_amount != amount:
        raise ZenginFormatError(
            f"the trailer's {label}金額 is {stated_amount}, the data records add up to {amount}", record=record.number
        )
