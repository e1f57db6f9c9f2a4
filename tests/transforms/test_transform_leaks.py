"""No error message ever quotes file content (promise P3)."""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass, field
from typing import Any

import pytest

from doorvoer.transforms import Limits, TransformError

from .helpers import failure

MARK = "Geheim7Q"  # stands for any value, header name or row text of a tenant's file
NUMBER = "2147483000"  # a number from the file, in a message about numbers
ALL = "SELECT * FROM input"


@dataclass
class Case:
    name: str
    category: str
    data: bytes
    sql: str = ALL
    options: dict[str, Any] = field(default_factory=dict)


def _csv(*lines: str) -> bytes:
    return "\n".join(lines).encode() + b"\n"


def _cases() -> list[Case]:
    value = f"{MARK} 12.50 (x"
    header = f"id,{MARK},datum"
    row = f"1,{value},31-02-2024"
    plain = _csv(header, row)
    many = _csv(header, *(f"{i},{value}{i},01-01-2024" for i in range(50_000)))
    unclosed = _csv(header, '1,"' + (MARK + "\n") * 400_000)
    json = {"read": {"format": "json"}}
    jsonl = {"read": {"format": "jsonl"}}
    cp1252_out = {"write": {"format": "csv", "encoding": "cp1252"}}
    return [
        Case("ragged more", "csv", _csv(header, row, f"2,{MARK},x,{MARK}")),
        Case("ragged fewer", "csv", _csv(header, row, f"2,{MARK}")),
        Case("ragged late", "csv", many + _csv(f"{MARK},{MARK}")),
        Case("utf-8", "encoding", f"{header}\n1,{MARK}".encode() + b"\xff\n"),
        Case("cp1252", "encoding", f"{header}\n1,{MARK}".encode() + b"\x81\n",
             options={"read": {"encoding": "cp1252"}}),
        Case("long line", "csv", _csv(header, MARK * 100),
             options={"read": {"max_line_bytes": 64}}),
        Case("open quote", "csv", unclosed, options={"read": {"max_line_bytes": 1000}}),
        Case("cast int", "sql", plain, f'SELECT "{MARK}"::INTEGER FROM input'),
        Case("cast decimal", "sql", plain, f'SELECT "{MARK}"::DECIMAL(10,2) FROM input'),
        Case("cast date", "sql", plain, f'SELECT "{MARK}"::DATE FROM input'),
        Case("cast json", "sql", plain, f'SELECT "{MARK}"::JSON FROM input'),
        Case("cast later", "sql", many, f'SELECT "{MARK}"::DOUBLE FROM input'),
        Case("strptime", "sql", plain, f"SELECT strptime(\"{MARK}\", '%d-%m-%Y') FROM input"),
        Case("date", "sql", plain, "SELECT strptime(datum, '%d-%m-%Y')::DATE FROM input"),
        Case("error()", "sql", plain, f'SELECT error("{MARK}") FROM input'),
        Case("regexp", "sql", plain, f'SELECT regexp_matches(id, "{MARK}") FROM input'),
        Case("unknown column", "sql", plain, "SELECT nope FROM input"),
        Case("group by", "sql", plain, f'SELECT id FROM input GROUP BY "{MARK}"'),
        Case("sum text", "sql", plain, f'SELECT sum("{MARK}") FROM input'),
        Case("overflow", "sql", _csv(MARK, NUMBER),
             f'SELECT "{MARK}"::INTEGER + 999999 FROM input'),
        Case("infer", "csv", _csv("n", *map(str, range(300_000)), MARK),
             options={"read": {"infer": True, "max_line_bytes": 1000}}),
        Case("json invalid", "json", f'[{{"a": "{MARK}"}}, {{"{MARK}": }}]'.encode(), options=json),
        Case("json not object", "json", f'[{{"a": "{MARK}"}}, "{MARK}"]'.encode(), options=json),
        Case("json path", "json", f'{{"{MARK}": 1}}'.encode(),
             options={"read": {"format": "json", "records": "data"}}),
        Case("jsonl invalid", "json", f'{{"a": "{MARK}"}}\n{{"{MARK}" 1}}\n'.encode(),
             options=jsonl),
        Case("jsonl not object", "json", f'["{MARK}"]\n'.encode(), options=jsonl),
        Case("output value", "output", _csv(header, f"1,{MARK}Ł,x"), options=cp1252_out),
        Case("output name", "output", _csv(f"{MARK}Ł", "1"), options=cp1252_out),
        Case("duplicate names", "output", plain, f'SELECT "{MARK}", "{MARK}" FROM input',
             options={"write": {"format": "json"}}),
        Case("memory", "limit", plain,
             f'SELECT list("{MARK}" || x) FROM input, range(10000000) t(x)',
             options={"limits": Limits(memory_limit_mb=32)}),
        Case("time", "limit", plain,
             f"SELECT count(*) FROM input, range(1000000000) t(x) WHERE \"{MARK}\" || x = ''",
             options={"limits": Limits(time_limit_s=0.5)}),
    ]  # fmt: skip


@pytest.mark.parametrize("case", _cases(), ids=lambda case: case.name)
def test_no_message_quotes_the_file(case: Case) -> None:
    assert MARK.encode() in case.data
    error = failure(case.data, case.sql, **case.options)
    assert isinstance(error, TransformError)
    assert error.category == case.category
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - bytes we just made
    shown = [
        str(error),
        repr(error),
        repr(error.args),
        error.detail,
        "".join(traceback.format_exception(error)),
        repr(copy.args),
        str(copy),
    ]
    for text in shown:
        assert MARK not in text
        assert NUMBER not in text
    assert error.__cause__ is None
    assert error.__context__ is None
    assert "\n" not in str(error)
    assert str(error).startswith(f"{error.category}: ")
