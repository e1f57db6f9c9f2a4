"""The process spec: a YAML file validated by pydantic. Errors name file, line and field."""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from doorvoer.processes.errors import SpecError
from doorvoer.transforms.spec import ReadSpec, TransformSpec, WriteSpec

FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DURATION = re.compile(r"^(\d+)\s*([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PICKUP = timedelta(days=90)


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        m = DURATION.match(value.strip())
        if m:
            return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])
    raise ValueError("use a number with a unit: 30s, 15m, 12h or 7d")


def _folder(value: str, what: str) -> str:
    folder = value.strip("/")
    if not FOLDER.match(folder):
        raise ValueError(
            f"{what} must be one folder name of letters, digits, '.', '_' or '-', "
            "like 'orders/'"
        )
    return folder


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SftpTargetSpec(Strict):
    connection: str
    path: str = "/"

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/") or ".." in PurePosixPath(v).parts:
            raise ValueError("must be an absolute path on the target without '..'")
        return v


class PickupTarget(Strict):
    pickup: str

    @field_validator("pickup")
    @classmethod
    def _pickup_folder(cls, v: str) -> str:
        return _folder(v, "pickup")


class SftpTarget(Strict):
    sftp: SftpTargetSpec


def _target_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((k for k in ("pickup", "sftp") if k in value), None)
    return next((k for k in ("pickup", "sftp") if hasattr(value, k)), None)


Target = Annotated[
    Annotated[PickupTarget, Tag("pickup")] | Annotated[SftpTarget, Tag("sftp")],
    Discriminator(_target_kind, custom_error_type="target",
                  custom_error_message="a target is `pickup: <folder>/` or `sftp: {...}`"),
]


class Retention(Strict):
    pickup_within: timedelta = timedelta(days=7)

    @field_validator("pickup_within", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d <= timedelta(0) or d > MAX_PICKUP:
            raise ValueError("must be more than 0 and at most 90d")
        return d


class ProcessSpec(Strict):
    name: str
    match: str
    read: ReadSpec
    transform: TransformSpec
    write: WriteSpec
    deliver: list[Target] = Field(min_length=1)
    retention: Retention = Retention()
    report: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not FOLDER.match(v):
            raise ValueError("use letters, digits, '.', '_' or '-' (max 63)")
        return v

    @field_validator("match")
    @classmethod
    def _match(cls, v: str) -> str:
        folder, sep, pattern = v.partition("/")
        if not sep or not pattern or "/" in pattern:
            raise ValueError("must be '<folder>/<pattern>', like 'orders/*.csv'")
        _folder(folder, "the folder in match")
        return v

    @property
    def folder(self) -> str:
        return self.match.partition("/")[0]

    def matches(self, folder: str, filename: str) -> bool:
        pattern = self.match.partition("/")[2]
        return folder == self.folder and fnmatch.fnmatchcase(filename, pattern)


def _node_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location."""
    best = node
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                # A missing field: point at the mapping itself; an extra one at its key.
                key = next((k for k, _ in node.value if k.value == part), None)
                return key or best
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return best
            node = node.value[part]
        else:
            continue  # union branch names such as 'PickupTarget'
        best = node
    return best


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in ("pickup", "sftp"):
            pass  # the union's tag; the field of the same name follows
        elif not (part[:1].isupper() or part.startswith("function-")):
            out += ("." if out else "") + part
        previous = part
    return out or "(top level)"


def parse_spec(text: str, source: str = "spec") -> ProcessSpec:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise SpecError(f"{source}: {where}not valid YAML: {exc.problem}") from None
    except yaml.YAMLError:
        raise SpecError(f"{source}: not valid YAML") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}: line 1: a process spec is a mapping of fields (name, match…)")
    try:
        return ProcessSpec.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors()[:5]:
            loc = tuple(err["loc"])
            node = _node_at(root, loc)
            line = node.start_mark.line + 1 if node is not None else 1
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            messages.append(f"{source}: line {line}: {_field_path(loc)}: {msg}")
        raise SpecError("\n".join(messages)) from None
