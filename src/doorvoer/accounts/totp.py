"""TOTP second factor (RFC 6238) and recovery codes. A code is accepted once only."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, select

from doorvoer.access.policy import may_turn_off_2fa
from doorvoer.accounts import notices
from doorvoer.accounts.models import RecoveryCode, User
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.secrets.sealing import Sealer
from doorvoer.unit import Work

STEP = 30
RECOVERY_CODES = 10
ISSUER = "Doorvoer"


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


def verify_totp(w: Work, user: User, code: str, now: float | None = None) -> bool:
    """Accept a code once: a code of the last used step or an earlier one is refused."""
    if user.totp_secret is None:
        return False
    step = matching_step(open_secret(w.ctx.sealer, user, user.totp_secret), code, now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _hash_code(user: User, code: str) -> str:
    normal = code.strip().replace("-", "").replace(" ", "").lower()
    return hashlib.sha256(f"{user.id}:{normal}".encode()).hexdigest()


def new_recovery_codes(w: Work, user: User) -> list[str]:
    """Ten fresh codes (the old ones stop working). Shown once; only hashes are kept."""
    session = w.session
    w.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        session.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(user, code)))
    session.flush()
    return codes


def use_recovery_code(w: Work, user: User, code: str) -> bool:
    """Each code works once; it is marked used with the time, not deleted."""
    wanted = _hash_code(user, code)
    for row in w.session.scalars(select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))):
        if hmac.compare_digest(row.code_hash, wanted):
            row.used_at = utcnow()
            return True
    return False


def remaining_recovery_codes(w: Work, user: User) -> int:
    return len(list(w.session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))))


# ---------------------------------------------------------------- setting it up


def pending_secret(w: Work, user: User) -> str:
    """The secret being set up (kept sealed in `totp_pending` until a first code confirms
    it); a new one when there is none, so reloading the setup page keeps the same QR."""
    sealer = w.ctx.sealer
    if user.totp_pending is not None:
        return open_secret(sealer, user, user.totp_pending)
    secret = new_secret()
    user.totp_pending = seal_secret(sealer, user, secret)
    return secret


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=user.email,
                                                             issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code as inline SVG without style attributes (the CSP allows no inline
    style) and without a fixed size (the stylesheet sizes it)."""
    svg: str = segno.make(uri, error="m").svg_inline(
        scale=4, svgclass="qr", lineclass=None, omitsize=True, title="QR code for your "
        "authenticator app", dark="#000", light="#fff")
    if "style=" in svg or "<script" in svg:  # the page would break under the CSP
        raise ValueError("segno wrote inline style or script into the QR code")
    return svg


def group(secret: str) -> str:
    """The secret in groups of four, easier to type in by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def confirm_setup(w: Work, user: User, code: str, now: float | None = None) -> bool:
    """Turn two-factor on when `code` matches the pending secret. The code's step counts
    as used, so it cannot log in a second time."""
    if user.totp_secret is not None or user.totp_pending is None:
        return False
    sealer = w.ctx.sealer
    secret = open_secret(sealer, user, user.totp_pending)
    step = matching_step(secret, code, now)
    if step is None:
        return False
    user.totp_secret = seal_secret(sealer, user, secret)
    user.totp_pending = None
    user.totp_last_step = step
    user.totp_enabled_at = utcnow()
    return True


def disable(w: Work, user: User) -> None:
    """Turn two-factor off: the secret and every recovery code are gone. Not for staff:
    they cannot work without it (the access policy's rule)."""
    if not may_turn_off_2fa(user.role):
        raise UserError("operator staff cannot work without two-factor authentication, "
                        "so it cannot be turned off")
    user.totp_secret = None
    user.totp_pending = None
    user.totp_last_step = None
    user.totp_enabled_at = None
    w.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def restart_setup(w: Work, user: User) -> None:
    """A new secret for the setup (the old QR code was scanned by the wrong phone)."""
    if user.totp_secret is None:
        user.totp_pending = None


def renew_recovery_codes(w: Work, user_id: str) -> list[str] | None:
    """Ten new recovery codes (the user is told by mail); None without two-factor."""
    user = w.session.get_one(User, user_id)
    if user.totp_secret is None:
        return None
    codes = new_recovery_codes(w, user)
    w.notify(notices.recovery_codes_renewed(w.settings, user))
    return codes
