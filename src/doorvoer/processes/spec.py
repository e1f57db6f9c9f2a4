"""The process spec: a YAML file validated by pydantic. Errors name file, line and field."""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from doorvoer.processes.errors import SpecError
from doorvoer.transforms.spec import ReadSpec, TransformSpec, WriteSpec
from doorvoer.yamlfile import parse_yaml

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


def parse_spec(text: str, source: str = "spec") -> ProcessSpec:
    return parse_yaml(text, ProcessSpec, source, SpecError,
                      "a process spec is a mapping of fields (name, match…)",
                      tags=("pickup", "sftp"))
