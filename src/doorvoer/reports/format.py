"""How numbers, sizes, durations and times read on the portal's pages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(n: float | None) -> str:
    """Decimal units, as people read them: 1 kB = 1000 bytes."""
    if n is None:
        return "—"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _trim(x: float, digits: int = 1) -> str:
    text = f"{x:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0.0, float(seconds))
    if s < 1:
        return f"{round(s * 1000)} ms"
    if s < 60:
        return f"{_trim(s)} s"
    if s < 3600:
        return f"{_trim(s / 60)} min"
    if s < 86400:
        return f"{_trim(s / 3600)} h"
    return f"{_trim(s / 86400)} d"


def human_count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}".replace(",", "\u202f")  # a thin space groups digits


def when(value: datetime | None) -> str:
    """A UTC time, to the second."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S")


def day_label(d: date) -> str:
    return f"{d.day} {d.strftime('%b')}"


def register(env: Any) -> None:
    """Make these helpers Jinja filters (idempotent)."""
    env.filters.update(bytes=human_bytes, duration=human_duration, count=human_count,
                       when=when, day=day_label)
