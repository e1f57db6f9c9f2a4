"""The failed sign-in throttle (P14), in the database: shared by every door (portal, API,
SFTP) and every node, so a limit of N means N for the whole installation.

Failures are counted per submitted name (whether it exists or not, so the answer tells
nothing) and per client address, within a sliding window: at most
`max_failed_logins` per name and `max_failed_logins_per_address` per address. The same
table limits other attempts under other keys (password reset requests)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from doorvoer.accounts.models import LoginFailure
from doorvoer.db import utcnow
from doorvoer.unit import Work


def _keys(kind: str, name: str, address: str) -> tuple[str, str]:
    return f"{kind}:{name.strip().lower()}", f"addr:{address}"


def _window(w: Work) -> timedelta:
    return timedelta(seconds=w.settings.failed_login_window_s)


def _count(w: Work, key: str) -> int:
    since = utcnow() - _window(w)
    return w.execute(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.key == key, LoginFailure.at >= since)).scalar() or 0


def throttled(w: Work, kind: str, name: str, address: str) -> bool:
    """Whether sign-ins of this name (`kind`: person or account) or from this address
    are refused for now."""
    by_name, by_addr = _keys(kind, name, address)
    return (_count(w, by_name) >= w.settings.max_failed_logins
            or _count(w, by_addr) >= w.settings.max_failed_logins_per_address)


def record_failure(w: Work, kind: str, name: str, address: str) -> None:
    record_attempt(w, *_keys(kind, name, address))
    w.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - _window(w)))


def clear_failures(w: Work, kind: str, name: str) -> None:
    """After a successful password reset the owner may sign in again at once."""
    w.execute(delete(LoginFailure).where(LoginFailure.key == _keys(kind, name, "")[0]))


def attempts_exceeded(w: Work, limits: dict[str, int]) -> bool:
    """Whether any key has reached its limit of recorded attempts within the window."""
    return any(_count(w, key) >= limit for key, limit in limits.items())


def record_attempt(w: Work, *keys: str) -> None:
    now = utcnow()
    w.session.add_all(LoginFailure(key=key, at=now) for key in keys)
    w.session.flush()
