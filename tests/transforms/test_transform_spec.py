"""Validation of the read, transform and write parts of a process spec."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from doorvoer.transforms import Limits, ReadSpec, TransformSpec, WriteSpec


def test_defaults() -> None:
    read = ReadSpec(format="csv")
    assert (read.delimiter, read.quote, read.encoding, read.header, read.infer) == (
        ",",
        '"',
        "utf-8",
        True,
        False,
    )
    assert read.max_line_bytes == 1_048_576
    write = WriteSpec(format="json")
    assert (write.filename, write.encoding, write.line_ending) == ("{stem}.{ext}", "utf-8", "lf")
    assert Limits() == Limits(memory_limit_mb=256, time_limit_s=60.0, threads=1)


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("UTF-8", "utf-8"),
        ("utf8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("cp1252", "cp1252"),
        ("windows-1252", "cp1252"),
        ("latin-1", "iso8859-1"),
        ("ISO-8859-1", "iso8859-1"),
        ("iso-8859-15", "iso8859-15"),
    ],
)
def test_encodings_are_normalised(given: str, normalised: str) -> None:
    assert ReadSpec(format="csv", encoding=given).encoding == normalised
    assert WriteSpec(format="csv", encoding=given).encoding == normalised


@pytest.mark.parametrize(
    "fields",
    [
        {"encoding": "klingon"},
        {"encoding": "utf-16"},
        {"delimiter": ";;"},
        {"delimiter": ""},
        {"delimiter": "\n"},
        {"quote": "''"},
        {"delimiter": '"'},
        {"decimal": ";"},
        {"records": "data"},
        {"max_line_bytes": 0},
        {"unknown": 1},
        {"format": "xml"},
    ],
)
def test_invalid_read_specs(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ReadSpec.model_validate({"format": "csv", **fields})


def test_tab_delimiter_and_records_path() -> None:
    assert ReadSpec(format="csv", delimiter="\t").delimiter == "\t"
    assert ReadSpec(format="json", records="data.orders").records == "data.orders"
    with pytest.raises(ValidationError):
        ReadSpec(format="json", records="data..orders")


@pytest.mark.parametrize(
    "filename",
    ["", "  ", "out/{stem}.csv", "..\\{stem}", "{stem}.{format}", "{0}.csv", "{stem!r}", "{seq:03}",
     "{stem"],
)  # fmt: skip
def test_invalid_filename_templates(filename: str) -> None:
    with pytest.raises(ValidationError):
        WriteSpec(format="csv", filename=filename)


def test_valid_filename_templates() -> None:
    template = "{date}_{name}_{stem}_{seq}.{ext} {{literal}}"
    assert WriteSpec(format="csv", filename=template).filename == template


def test_invalid_write_specs() -> None:
    for fields in ({"line_ending": "cr"}, {"delimiter": "ab"}, {"extra": True}):
        with pytest.raises(ValidationError):
            WriteSpec.model_validate({"format": "csv", **fields})


def test_transform_spec_and_limits() -> None:
    with pytest.raises(ValidationError):
        TransformSpec(sql=" \n ")
    with pytest.raises(ValidationError):
        TransformSpec.model_validate({"sql": "SELECT 1", "extra": 1})
    with pytest.raises(ValueError, match="memory"):
        Limits(memory_limit_mb=0)
    with pytest.raises(ValueError, match="time"):
        Limits(time_limit_s=0)
    with pytest.raises(ValueError, match="threads"):
        Limits(threads=0)
