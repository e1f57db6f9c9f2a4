"""End to end: the Dutch order example, counts, streams, file names."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from doorvoer.transforms import (
    Limits,
    ReadSpec,
    TransformError,
    TransformSpec,
    WriteSpec,
    output_extension,
    render_filename,
    run_transform,
)

from .helpers import Sink, Source, stream, transform

ORDERS = (
    "ordernr;datum;land;bedrag;status;omschrijving\r\n"
    "00123;05-03-2024;nl;12,50;open;Koffie € 2,50 per kop\r\n"
    '00124;06-03-2024;be;1234,00;geannuleerd;"Stoel; eiken"\r\n'
    '00125;31-12-2023;de;0,99;verzonden;"Zegt ""ja""\r\nen nee"\r\n'
    "00126;01-01-2024;fr;-7,05;open;\r\n"
)

SQL = """SELECT ordernr AS order_id,
       strptime(datum, '%d-%m-%Y')::DATE AS order_date,
       upper(land) AS country,
       replace(bedrag, ',', '.')::DECIMAL(10,2) AS amount,
       omschrijving AS note
FROM input WHERE status <> 'geannuleerd'"""

READ = {"delimiter": ";", "encoding": "cp1252", "decimal": ","}


def test_dutch_orders_to_json() -> None:
    result, output = transform(ORDERS.encode("cp1252"), SQL, read=READ, write={"format": "json"})
    assert (result.rows_in, result.rows_out) == (4, 3)
    assert result.columns_out == ["order_id", "order_date", "country", "amount", "note"]
    assert json.loads(output, parse_float=Decimal) == [
        {
            "order_id": "00123",
            "order_date": "2024-03-05",
            "country": "NL",
            "amount": Decimal("12.50"),
            "note": "Koffie € 2,50 per kop",
        },
        {
            "order_id": "00125",
            "order_date": "2023-12-31",
            "country": "DE",
            "amount": Decimal("0.99"),
            "note": 'Zegt "ja"\r\nen nee',
        },
        {
            "order_id": "00126",
            "order_date": "2024-01-01",
            "country": "FR",
            "amount": Decimal("-7.05"),
            "note": "",
        },
    ]
    assert output.decode("utf-8").split("\n")[1] == (
        '{"order_id":"00123","order_date":"2024-03-05","country":"NL","amount":12.50,'
        '"note":"Koffie € 2,50 per kop"},'
    )


def test_dutch_orders_to_csv_for_excel() -> None:
    _, output = transform(
        ORDERS.encode("cp1252"),
        SQL,
        read=READ,
        write={"format": "csv", "delimiter": ";", "encoding": "cp1252", "line_ending": "crlf"},
    )
    assert output.decode("cp1252") == (
        "order_id;order_date;country;amount;note\r\n"
        "00123;2024-03-05;NL;12.50;Koffie € 2,50 per kop\r\n"
        '00125;2023-12-31;DE;0.99;"Zegt ""ja""\r\nen nee"\r\n'
        "00126;2024-01-01;FR;-7.05;\r\n"
    )


def test_a_bad_date_is_a_clean_sql_error() -> None:
    data = ORDERS.replace("31-12-2023", "31-13-2023").encode("cp1252")
    with pytest.raises(TransformError) as caught:
        transform(data, SQL, read=READ)
    assert caught.value.category == "sql"
    assert "31-13" not in str(caught.value)


def test_streams_are_only_read_and_written() -> None:
    sink = Sink()
    result = run_transform(
        ReadSpec(format="csv"),
        TransformSpec(sql="SELECT count(*) AS n FROM input"),
        WriteSpec(format="json"),
        stream(Source(b"a\n" + b"x\n" * 10_000, chunk=1000)),
        stream(sink),
    )
    assert (result.rows_in, result.rows_out) == (10_000, 1)
    assert json.loads(sink.value) == [{"n": 10_000}]
    assert not sink.closed


def test_errors_of_the_streams_themselves_pass_through() -> None:
    class Broken:
        def __init__(self) -> None:
            self.reads = 0

        def read(self, size: int) -> bytes:
            self.reads += 1
            if self.reads > 3:
                raise ConnectionError("vault read failed")
            return b"n\n" + b"1\n" * (size // 2 - 1)

    with pytest.raises(ConnectionError, match="vault read failed"):
        run_transform(
            ReadSpec(format="csv"),
            TransformSpec(sql="SELECT * FROM input"),
            WriteSpec(format="csv"),
            stream(Broken()),
            stream(Sink()),
        )

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run_transform(
            ReadSpec(format="csv"),
            TransformSpec(sql="SELECT * FROM input"),
            WriteSpec(format="csv"),
            stream(Source(b"n\n1\n")),
            stream(Full()),
        )


def test_output_extension() -> None:
    assert [output_extension(WriteSpec(format=f)) for f in ("csv", "json", "jsonl")] == [
        "csv",
        "json",
        "jsonl",
    ]


def test_render_filename() -> None:
    today = dt.date(2024, 3, 5)
    write = WriteSpec(format="json")
    assert render_filename(write, "orders/week 10.csv", None, today) == "week 10.json"
    named = WriteSpec(format="csv", filename="{date}-{stem}-{seq}.{ext}")
    assert render_filename(named, "x.tar.gz", 3, today) == "2024-03-05-x.tar-3.csv"
    assert render_filename(named, "x", None, today) == "2024-03-05-x-1.csv"
    whole = WriteSpec(format="jsonl", filename="{name}.out")
    assert render_filename(whole, "a\\b.csv", None, today) == "b.csv.out"
    with pytest.raises(TransformError):
        render_filename(WriteSpec(format="csv", filename="{stem}"), "..", None, today)


def test_a_sink_that_takes_part_of_each_write_gets_everything() -> None:
    class Trickle:
        def __init__(self) -> None:
            self.data = b""

        def write(self, data: bytes) -> int:
            taken = bytes(data[:5])
            self.data += taken
            return len(taken)

    sink = Trickle()
    run_transform(
        ReadSpec(format="csv"),
        TransformSpec(sql="SELECT * FROM input"),
        WriteSpec(format="csv"),
        stream(Source(b"a,b\n1,2\n3,4\n")),
        stream(sink),
    )
    assert sink.data == b"a,b\n1,2\n3,4\n"


def test_more_threads_give_the_same_result() -> None:
    data = b"n,t\n" + b"".join(b'%d,"x\ny"\n' % i for i in range(100_000))
    sql = "SELECT count(*) AS c, sum(n::BIGINT) AS s FROM input WHERE t LIKE 'x%'"
    expected = b'{"c":100000,"s":4999950000}\n'
    assert transform(data, sql, limits=Limits(threads=2))[1] == expected
    assert transform(data, sql)[1] == expected
