"""Zengin fixed-length records: the 総合振込 file we write and the 口座振替 results we read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.zengin_records import (
    LAYOUTS,
    RECORD_LENGTH,
    DebitResult,
    Payee,
    Payer,
    TransferFile,
    ZenginFormatError,
    read_debit_results,
    read_transfer_file,
    transfer_file,
)

PAYER = Payer(
    code="1234567890",
    name="ﾏﾄﾒﾃ(ｶ",
    bank_code="0001",
    bank_name="ﾐｽﾞﾎ",
    branch_code="001",
    branch_name="ﾄｳｷﾖｳ",
    account_type=1,
    account_number="1234567",
)
PAYEES = (
    Payee(
        bank_code="0005",
        bank_name="ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ",
        branch_code="123",
        branch_name="ｼﾌﾞﾔ",
        account_type=1,
        account_number="7654321",
        name="ｶ)ｽﾄﾘ-ﾑﾄﾞｳｶﾞ",
        amount=1_234_567,
        customer_code1=42,
        customer_code2=202611,
    ),
    Payee(
        bank_code="0009",
        branch_code="456",
        account_type=2,
        account_number="0000001",
        name="ﾐﾕ-ｼﾞﾂｸ(ﾄﾞ",
        amount=1,
        new_code=1,
        transfer_kind=8,
    ),
    Payee(
        bank_code="0010",
        branch_code="789",
        account_type=4,
        account_number="1111111",
        name="ｹﾞ-ﾑｽﾞ",
        amount=9_999_999_999,
        edi_info="PO000123",
    ),
)
DAY = date(2027, 1, 29)


def _records(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data[:-2].split(b"\r\n")


def test_layouts_are_120_bytes() -> None:
    """Every layout's field widths add up to 120."""
    for name, layout in LAYOUTS.items():
        assert sum(width for _, _, width in layout) == RECORD_LENGTH, name


def test_every_record_is_120_bytes_in_order() -> None:
    """Header, one data record per payee, trailer, end: each 120 single-byte characters and CRLF."""
    records = _records(transfer_file(PAYER, DAY, PAYEES))
    assert [record[:1] for record in records] == [b"1", b"2", b"2", b"2", b"8", b"9"]
    assert all(len(record) == RECORD_LENGTH for record in records)
    assert records[0][:4] == b"1210"
    assert records[0][54:58] == b"0129"


def test_trailer_counts_and_sums_the_payees() -> None:
    """The trailer carries the number of data records and the sum of their amounts."""
    trailer = _records(transfer_file(PAYER, DAY, PAYEES))[-2]
    total = 1_234_567 + 1 + 9_999_999_999
    assert trailer == b"8" + b"000003" + f"{total:012d}".encode() + b" " * 101


def test_round_trip() -> None:
    """Reading a written file gives back the payer, the date and the payees with their amounts."""
    read = read_transfer_file(transfer_file(PAYER, DAY, PAYEES))
    assert read == TransferFile(payer=PAYER, transfer_month=1, transfer_day=29, payees=PAYEES)
    assert read.total_amount == sum(payee.amount for payee in PAYEES)


def test_back_to_back_records_are_written_and_read() -> None:
    """Without a separator the file is 120-byte records end to end, and reads the same."""
    data = transfer_file(PAYER, DAY, PAYEES, separator=b"")
    assert len(data) == 6 * RECORD_LENGTH
    assert read_transfer_file(data) == read_transfer_file(transfer_file(PAYER, DAY, PAYEES))


def test_a_file_without_its_final_crlf_is_read() -> None:
    """The last record's CRLF is optional."""
    data = transfer_file(PAYER, DAY, PAYEES)
    assert read_transfer_file(data[:-2]).payees == PAYEES


def test_names_are_converted_and_cut_to_their_field() -> None:
    """Full-width names become Zengin kana, cut to 30 bytes for a payee and 40 for the payer."""
    long_name = "カブシキガイシャ　ストリーミングドウガハイシンサービスジャパン"
    payee = replace(PAYEES[0], name=long_name)
    payer = replace(PAYER, name=long_name + long_name)
    read = read_transfer_file(transfer_file(payer, DAY, [payee]))
    assert read.payees[0].name == "ｶﾌﾞｼｷｶﾞｲｼﾔ ｽﾄﾘ-ﾐﾝｸﾞﾄﾞｳｶﾞﾊｲｼﾝｻ-"
    assert len(read.payees[0].name) == 30
    assert len(read.payer.name) == 40


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "株式会社"}, "受取人名"),
        ({"bank_code": "01"}, "被仕向銀行番号"),
        ({"account_number": "12345678"}, "口座番号"),
        ({"amount": 0}, "振込金額"),
        ({"amount": 10_000_000_000}, "振込金額"),
        ({"account_type": 3}, "預金種目"),
        ({"customer_code1": 10**10}, "顧客コード1"),
        ({"edi_info": "X", "customer_code1": 1}, "EDI"),
    ],
)
def test_values_that_do_not_fit_are_refused(change: dict[str, object], message: str) -> None:
    """A payee value that cannot be written is refused, naming the payee and the field."""
    payee = replace(PAYEES[0], **change)
    with pytest.raises(ValueError, match=f"payee 1.*{message}"):
        transfer_file(PAYER, DAY, [payee])


def test_a_file_needs_payees_and_a_known_separator() -> None:
    """No payees, or a separator other than CRLF or nothing, is refused."""
    with pytest.raises(ValueError, match="at least one payee"):
        transfer_file(PAYER, DAY, [])
    with pytest.raises(ValueError, match="separator"):
        transfer_file(PAYER, DAY, PAYEES, separator=b"\n")


def _tamper(data: bytes, offset: int, byte: bytes) -> bytes:
    return data[:offset] + byte + data[offset + 1 :]


def test_a_tampered_trailer_count_is_refused() -> None:
    """Changing the trailer's count breaks the count check on the trailer record."""
    data = transfer_file(PAYER, DAY, PAYEES)
    trailer_start = 4 * (RECORD_LENGTH + 2)
    with pytest.raises(ZenginFormatError, match=r"record 5: .*合計件数 is 4") as caught:
        read_transfer_file(_tamper(data, trailer_start + 6, b"4"))
    assert caught.value.record == 5


def test_a_tampered_amount_breaks_the_trailer_sum() -> None:
    """Changing a data record's amount makes the trailer's sum disagree."""
    data = transfer_file(PAYER, DAY, PAYEES)
    amount_start = 1 * (RECORD_LENGTH + 2) + 80
    assert data[amount_start : amount_start + 10] == b"0001234567"
    with pytest.raises(ZenginFormatError, match="合計金額"):
        read_transfer_file(_tamper(data, amount_start, b"1"))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: data[:-2][:-1], "record 6: is 119 bytes"),
        (lambda data: data.replace(b"\r\n", b"")[:-1], "not a whole number"),
        (lambda data: _tamper(data, 0, b"2"), "record 1: expected the header"),
        (lambda data: _tamper(data, 1, b"9"), "種別コード is 91"),
        (lambda data: _tamper(data, 3, b"1"), "コード区分"),
        (lambda data: data[: 5 * 122], "ends without"),
        (lambda data: data + data[-122:], "record 7: records follow the end"),
        (lambda data: _tamper(data, 122 + 85, b"A"), "record 2: 振込金額 is numeric"),
        (lambda data: _tamper(data, 122 + 40, b"9"), "手形交換所番号"),
        (lambda data: _tamper(data, 122 + 112, b"X"), "識別表示"),
        (lambda data: _tamper(data, 122 + 95, b"A"), "顧客コード is numeric"),
        (lambda data: _tamper(data, 56, b"3"), "取組日 0139"),
        (lambda data: _tamper(data, 122 + 60, b"\x82"), "double-byte"),
        (lambda data: _tamper(data, 122 + 60, b"\xff"), "outside the Zengin character set"),
        (lambda data: _tamper(data, 122 + 60, b"\x00"), "outside the Zengin character set"),
        (lambda _data: b"", "empty"),
    ],
)
def test_malformed_transfer_files_are_refused(mangle: Callable[[bytes], bytes], message: str) -> None:
    """Wrong lengths, kinds, order, field contents or characters refuse the file, saying where."""
    with pytest.raises(ZenginFormatError, match=message):
        read_transfer_file(mangle(transfer_file(PAYER, DAY, PAYEES)))


def test_two_payer_groups_are_refused_for_transfers() -> None:
    """A transfer file carries one header-data-trailer group."""
    records = _records(transfer_file(PAYER, DAY, PAYEES))
    data = b"\r\n".join(records[:-1] + records[:-1] + records[-1:])
    with pytest.raises(ZenginFormatError, match="record 6: a second header"):
        read_transfer_file(data)


names = st.text(alphabet="ｱｲｳｴｵｶｷｸｹｺﾀﾁﾂﾃﾄﾞﾟ ABC123()-./", max_size=30).map(str.rstrip)
payees = st.builds(
    Payee,
    bank_code=st.from_regex(r"\A[0-9]{4}\Z"),
    branch_code=st.from_regex(r"\A[0-9]{3}\Z"),
    account_type=st.sampled_from([1, 2, 4]),
    account_number=st.from_regex(r"\A[0-9]{7}\Z"),
    name=names,
    amount=st.integers(min_value=1, max_value=9_999_999_999),
    new_code=st.sampled_from([0, 1, 2]),
    customer_code1=st.integers(min_value=0, max_value=9_999_999_999),
    customer_code2=st.integers(min_value=0, max_value=9_999_999_999),
    transfer_kind=st.sampled_from([7, 8]),
)


@given(st.lists(payees, min_size=1, max_size=20), st.dates(), st.sampled_from([b"\r\n", b""]))
def test_any_payees_round_trip(payee_list: list[Payee], day: date, separator: bytes) -> None:
    """Any payees in Zengin form are read back exactly, in order, from either record separation."""
    data = transfer_file(PAYER, day, payee_list, separator=separator)
    assert len(data) == (len(payee_list) + 3) * (RECORD_LENGTH + len(separator))
    read = read_transfer_file(data)
    assert read.payees == tuple(payee_list)
    assert (read.transfer_month, read.transfer_day) == (day.month, day.day)


# --- 口座振替 results, built field by field so the reader is checked against the layout itself


def _debit_header(type_code: str = "91") -> str:
    return (
        "1" + type_code + "0" + "9876543210" + "ﾏﾄﾒﾃ".ljust(40) + "1127"
        "0001" + "ﾐｽﾞﾎ".ljust(15) + "001" + "ﾄｳｷﾖｳ".ljust(15) + "1" + "1234567" + " " * 17
    )


def _debit_data(reference: str, amount: int, result: str) -> str:
    return (
        "2" + "0005" + "ﾐﾂﾋﾞｼ".ljust(15) + "123" + "ｼﾌﾞﾔ".ljust(15) + " " * 4 + "1" + "7654321"
        + "ﾔﾏﾀﾞ ﾀﾛｳ".ljust(30) + f"{amount:010d}" + "0" + reference.ljust(20) + result + " " * 8
    )  # fmt: skip


def _debit_trailer(counts: tuple[int, int, int, int, int, int]) -> str:
    total, total_amount, done, done_amount, failed, failed_amount = counts
    return f"8{total:06d}{total_amount:012d}{done:06d}{done_amount:012d}{failed:06d}{failed_amount:012d}" + " " * 65


def _debit_file(records: list[str], separator: bytes = b"\r\n") -> bytes:
    return b"".join(record.encode("cp932") + separator for record in records)


ROWS = [("IN000000000101", 5_500, "0"), ("IN000000000102", 3_300, "1"), ("IN000000000103", 1_100, "0")]
GOOD = [
    _debit_header(),
    *(_debit_data(*row) for row in ROWS),
    _debit_trailer((3, 9_900, 2, 6_600, 1, 3_300)),
    "9" + " " * 119,
]


def test_debit_results_are_read() -> None:
    """Each data record gives its invoice reference, amount and result code."""
    assert all(len(record.encode("cp932")) == RECORD_LENGTH for record in GOOD)
    results = read_debit_results(_debit_file(GOOD))
    assert results == [
        DebitResult(customer_number="IN000000000101", amount=5_500, result_code=0),
        DebitResult(customer_number="IN000000000102", amount=3_300, result_code=1),
        DebitResult(customer_number="IN000000000103", amount=1_100, result_code=0),
    ]
    assert [result.debited for result in results] == [True, False, True]


def test_back_to_back_debit_results_are_read() -> None:
    """A result file without separators reads the same."""
    assert read_debit_results(_debit_file(GOOD, b"")) == read_debit_results(_debit_file(GOOD))


def test_several_groups_are_read_and_each_checked() -> None:
    """Several header-data-trailer groups before the end record are read in order."""
    second = [_debit_header(), _debit_data("IN2", 700, "9"), _debit_trailer((1, 700, 0, 0, 1, 700))]
    results = read_debit_results(_debit_file(GOOD[:-1] + second + GOOD[-1:]))
    assert [result.customer_number for result in results] == [row[0] for row in ROWS] + ["IN2"]


def _with(index: int, record: str) -> list[str]:
    records = list(GOOD)
    records[index] = record
    return records


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (_with(2, _debit_data("IN000000000102", 3_300, "0")[:-1]), "record 3: is 119 bytes"),
        (_with(2, _debit_data("IN000000000102", 3_300, "5")), "record 3: 振替結果コード is 5"),
        (_with(2, _debit_data("IN000000000102", 3_300, "X")), "record 3: 振替結果コード is numeric"),
        (_with(4, _debit_trailer((4, 9_900, 2, 6_600, 1, 3_300))), "record 5: .*合計件数 is 4"),
        (_with(4, _debit_trailer((3, 9_901, 2, 6_600, 1, 3_300))), "合計金額 is 9901"),
        (_with(4, _debit_trailer((3, 9_900, 3, 9_900, 0, 0))), "振替済件数 is 3"),
        (_with(4, _debit_trailer((3, 9_900, 2, 6_600, 1, 3_000))), "振替不能金額 is 3000"),
        (_with(0, _debit_header("21")), "種別コード is 21"),
        (GOOD[1:], "record 1: expected the header"),
        (GOOD[:-1], "ends without"),
        ([*GOOD[:4], *GOOD[5:]], "record 5: expected a data record"),
    ],
)
def test_malformed_result_files_are_refused(records: list[str], message: str) -> None:
    """Short records, unknown result codes, trailer mismatches and disorder refuse the whole file."""
    with pytest.raises(ZenginFormatError, match=message):
        read_debit_results(_debit_file(records))


def test_the_error_is_an_api_error() -> None:
    """A refused file answers as an invalid request naming the record."""
    with pytest.raises(ZenginFormatError) as caught:
        read_debit_results(_debit_file(GOOD[:-1]))
    assert caught.value.as_dict()["error"]["code"] == "zengin_file_invalid"
    assert caught.value.status == 400
