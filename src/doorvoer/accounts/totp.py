"""TOTP second factor (RFC 6238) and recovery codes. A code is accepted once only."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from doorvoer.accounts.models import RecoveryCode, User
from doorvoer.db import utcnow
from doorvoer.secrets.sealing import Sealer

STEP = 30
RECOVERY_CODES = 10


def _context(user: User) -> str:
    return f"totp:{user.id}"


def new_secret() -> str:
    return pyotp.random_base32()


def seal_secret(sealer: Sealer, user: User, secret: str) -> bytes:
    return sealer.seal(secret.encode(), _context(user))


def open_secret(sealer: Sealer, user: User, sealed: bytes) -> str:
    return sealer.unseal(sealed, _context(user)).decode()


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code this is (the current one or one either side)."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    now = time.time() if now is None else now
    totp = pyotp.TOTP(secret, interval=STEP)
    current = int(now // STEP)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def verify_totp(session: Session, sealer: Sealer, user: User, code: str,
                now: float | None = None) -> bool:
    """Accept a code once: a code of the last used step or an earlier one is refused."""
    if user.totp_secret is None:
        return False
    step = matching_step(open_secret(sealer, user, user.totp_secret), code, now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _hash_code(user: User, code: str) -> str:
    normal = code.strip().replace("-", "").replace(" ", "").lower()
    return hashlib.sha256(f"{user.id}:{normal}".encode()).hexdigest()


def new_recovery_codes(session: Session, user: User) -> list[str]:
    """Ten fresh codes (the old ones stop working). Shown once; only hashes are kept."""
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        session.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(user, code)))
    session.flush()
    return codes


def use_recovery_code(session: Session, user: User, code: str) -> bool:
    """Each code works once; it is marked used with the time, not deleted."""
    wanted = _hash_code(user, code)
    for row in session.scalars(select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))):
        if hmac.compare_digest(row.code_hash, wanted):
            row.used_at = utcnow()
            return True
    return False


def remaining_recovery_codes(session: Session, user: User) -> int:
    return len(list(session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))))
