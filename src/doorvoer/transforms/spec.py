"""The `read`, `transform` and `write` parts of a process spec, and the limits."""

from __future__ import annotations

import codecs
import re
import string
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Encodings a reader or writer accepts, by the name codecs.lookup gives them.
# All are ASCII-compatible, so a line break is the same byte in every one.
SUPPORTED_ENCODINGS: frozenset[str] = frozenset(
    {"utf-8", "utf-8-sig", "cp1252", "iso8859-1", "iso8859-15"}
)

FILENAME_FIELDS: frozenset[str] = frozenset({"stem", "name", "ext", "date", "seq"})

Format = Literal["csv", "json", "jsonl", "fixed", "xlsx", "xml"]  # what a writer writes
XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
ReadFormat = Literal["csv", "json", "jsonl", "fixed", "xlsx", "xml"]
_CELL = re.compile(r"^([A-Z]{1,3})([1-9][0-9]{0,6})$")


def cell(ref: str) -> tuple[int, int]:
    """A cell reference like `B3` as 0-based (row, column)."""
    m = _CELL.match(ref)
    if m is None:
        raise ValueError(f"{ref!r} is not a cell such as B3")
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - ord("A") + 1
    return int(m.group(2)) - 1, col - 1
MAX_FIXED_COLUMNS = 2048


class FixedColumn(BaseModel):
    """A column of a fixed-width record: its name, where it starts (1-based; without
    it, right after the column before) and how many characters it takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    start: int | None = Field(default=None, ge=1)
    width: int = Field(ge=1, le=1_048_576)


def _normalise_encoding(value: str) -> str:
    try:
        name = codecs.lookup(value).name
    except LookupError:
        name = ""
    if name not in SUPPORTED_ENCODINGS:
        allowed = ", ".join(sorted(SUPPORTED_ENCODINGS))
        raise ValueError(f"unsupported encoding {value!r}; use one of {allowed}")
    return name


def _one_character(value: str, what: str) -> str:
    if len(value) != 1:
        raise ValueError(f"{what} must be exactly one character")
    if value in "\r\n":
        raise ValueError(f"{what} cannot be a line break")
    return value


class FixedOutColumn(BaseModel):
    """A column of a fixed-width output: the query's column of that name, `width`
    characters, aligned left or right and padded with `pad`; a longer value fails the
    transfer unless `truncate` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    width: int = Field(ge=1, le=1_048_576)
    align: Literal["left", "right"] = "left"
    pad: str = " "
    truncate: bool = False

    @field_validator("pad")
    @classmethod
    def _pad(cls, value: str) -> str:
        return _one_character(value, "pad")


class ReadSpec(BaseModel):
    """How to read the input file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: ReadFormat
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    header: bool = True
    columns: tuple[FixedColumn, ...] | None = None  # fixed: the layout
    trim: bool = True  # fixed: strip the spaces around each value
    skip_lines: int = Field(default=0, ge=0, le=1000)  # fixed: header lines
    sheet: str | int | None = None  # xlsx: a name or a 0-based index; default the first
    header_row: int = Field(default=1, ge=1, le=1_048_576)  # xlsx: 1-based, in the range
    range: str | None = None  # xlsx: like B3:H500
    record: str | None = None  # xml: the record element's path, /Orders/Order
    namespaces: dict[str, str] | None = None  # xml: prefix -> URI
    fields: dict[str, str] | None = None  # xml: column -> path relative to the record
    infer: bool = False
    decimal: str | None = None
    records: str | None = None
    max_line_bytes: int = Field(default=1_048_576, ge=1, le=64 * 1_048_576)

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        return _one_character(value, "delimiter")

    @field_validator("quote")
    @classmethod
    def _quote(cls, value: str) -> str:
        return _one_character(value, "quote")

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        return _normalise_encoding(value)

    @field_validator("decimal")
    @classmethod
    def _decimal(cls, value: str | None) -> str | None:
        if value not in (None, ",", "."):
            raise ValueError('decimal must be "," or "."')
        return value

    @field_validator("records")
    @classmethod
    def _records(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(not part for part in value.split("."))):
            raise ValueError('records must be a dotted path like "data.orders"')
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ReadSpec:
        if self.delimiter == self.quote:
            raise ValueError("delimiter and quote must differ")
        if self.records is not None and self.format != "json":
            raise ValueError("records applies only to format json")
        if self.format == "fixed":
            self._check_layout()
        elif self.columns is not None or self.skip_lines or not self.trim:
            raise ValueError("columns, trim and skip_lines apply only to format fixed")
        if self.format != "xlsx" and (self.sheet is not None or self.range is not None
                                      or self.header_row != 1):
            raise ValueError("sheet, header_row and range apply only to format xlsx")
        if self.format == "xml":
            self._check_xml()
        elif self.record is not None or self.namespaces is not None or self.fields is not None:
            raise ValueError("record, namespaces and fields apply only to format xml")
        if self.range is not None:
            first, sep, last = self.range.upper().partition(":")
            if not sep:
                raise ValueError("range is two cells such as B3:H500")
            (r0, c0), (r1, c1) = cell(first), cell(last)
            if r1 < r0 or c1 < c0:
                raise ValueError("range: the second cell lies before the first")
        return self

    def _check_xml(self) -> None:
        if not self.record or not self.record.startswith("/") or self.record == "/":
            raise ValueError('format xml needs record: the record element\'s path, like '
                             '"/Orders/Order"')
        prefixes = set(self.namespaces or {})
        paths = [self.record, *(self.fields or {}).values()]
        for path in paths:
            for part in path.replace("@", "/").split("/"):
                prefix, sep, _ = part.rpartition(":")
                if sep and prefix not in prefixes:
                    raise ValueError(f"the prefix {prefix!r} of {path!r} is not in namespaces")
                if part and not re.fullmatch(r"[\w.\-:]+", part):
                    raise ValueError(f"{path!r} is not a path of element names")
        for name, path in (self.fields or {}).items():
            if not name or not path or path.startswith("/"):
                raise ValueError(f"fields: {name!r} needs a path relative to the record")

    @property
    def cells(self) -> tuple[int, int, int, int] | None:
        """xlsx: the range as 0-based first row, first column, last row, last column."""
        if self.range is None:
            return None
        first, _, last = self.range.upper().partition(":")
        (r0, c0), (r1, c1) = cell(first), cell(last)
        return r0, c0, r1, c1

    def _check_layout(self) -> None:
        if not self.columns:
            raise ValueError("format fixed needs columns: a list of {name, start, width} "
                             "or {name, width}")
        if len(self.columns) > MAX_FIXED_COLUMNS:
            raise ValueError(f"at most {MAX_FIXED_COLUMNS} columns")
        seen: set[str] = set()
        end = 0  # the last character taken so far (1-based)
        for column in self.columns:
            if column.name.lower() in seen:
                raise ValueError(f"column {column.name!r} is named twice")
            seen.add(column.name.lower())
            start = column.start if column.start is not None else end + 1
            if start <= end:
                raise ValueError(f"column {column.name!r} starts at {start}, inside the "
                                 f"column before it (which ends at {end})")
            end = start + column.width - 1

    @property
    def layout(self) -> list[tuple[str, int, int]]:
        """fixed: each column's name, 0-based start and end (exclusive)."""
        out, end = [], 0
        for column in self.columns or ():
            start = column.start - 1 if column.start is not None else end
            end = start + column.width
            out.append((column.name, start, end))
        return out


class TransformSpec(BaseModel):
    """The DuckDB SQL that turns the table `input` into the output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sql: str

    @field_validator("sql")
    @classmethod
    def _sql(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("sql must not be empty")
        return value


class WriteSpec(BaseModel):
    """How to write the output file and what to call it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format
    filename: str = "{stem}.{ext}"
    delimiter: str = ","
    encoding: str = "utf-8"
    header: bool = True
    newline: Literal["lf", "crlf"] | None = None
    line_ending: Literal["lf", "crlf"] = "lf"  # the older name of `newline`
    columns: tuple[FixedOutColumn, ...] | None = None  # fixed: the layout
    sheet: str | None = None  # xlsx: the sheet's name (default Sheet1)
    root: str | None = None  # xml: the document element (default rows)
    record: str | None = None  # xml: each row's element (default row)
    attributes: tuple[str, ...] | None = None  # xml: columns written as attributes
    namespace: str | None = None  # xml: the elements' namespace URI

    @field_validator("sheet")
    @classmethod
    def _sheet(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 31
                                  or any(c in value for c in "[]:*?/\\")):
            raise ValueError("sheet: 1 to 31 characters, none of [ ] : * ? / \\")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WriteSpec:
        if self.sheet is not None and self.format != "xlsx":
            raise ValueError("sheet applies only to format xlsx")
        xml = (self.root, self.record, self.attributes, self.namespace)
        if self.format != "xml" and any(v is not None for v in xml):
            raise ValueError("root, record, attributes and namespace apply only to format xml")
        for what, name in (("root", self.root), ("record", self.record),
                           *(("attributes", a) for a in self.attributes or ())):
            if name is not None and not XML_NAME.match(name):
                raise ValueError(f"{what}: {name!r} is not an XML name (letters, digits, "
                                 "_ . -, not starting with a digit)")
        if self.newline is not None:
            object.__setattr__(self, "line_ending", self.newline)
        if self.format == "fixed":
            if not self.columns:
                raise ValueError("format fixed needs columns: a list of {name, width} with "
                                 "align, pad and truncate if needed")
            names = [c.name for c in self.columns]
            if len({n.lower() for n in names}) != len(names):
                raise ValueError("a column is named twice in the layout")
        elif self.columns is not None:
            raise ValueError("columns apply only to format fixed")
        return self

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("filename must not be empty")
        if "/" in value or "\\" in value or "\0" in value:
            raise ValueError("filename must not contain / or \\")
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"filename template is malformed: {exc}") from None
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if field not in FILENAME_FIELDS:
                allowed = ", ".join("{" + name + "}" for name in sorted(FILENAME_FIELDS))
                raise ValueError(f"filename may only use the fields {allowed}")
            if spec or conversion:
                raise ValueError("filename fields take no format spec or conversion")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        value = _one_character(value, "delimiter")
        if value == '"':
            raise ValueError("delimiter cannot be the quote character")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        return _normalise_encoding(value)


@dataclass(frozen=True)
class Limits:
    """What one transform may use: DuckDB's memory, wall time, threads."""

    memory_limit_mb: int = 256
    time_limit_s: float = 60.0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.memory_limit_mb < 1:
            raise ValueError("memory_limit_mb must be at least 1")
        if not self.time_limit_s > 0:
            raise ValueError("time_limit_s must be positive")
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
