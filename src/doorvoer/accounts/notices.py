"""E-mails that tell a user what happened to their account (P14)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from doorvoer.accounts.models import User
from doorvoer.config import Settings
from doorvoer.mail import message


def two_factor_enabled(settings: Settings, user: User) -> EmailMessage:
    return message(settings, user.email, "Two-factor authentication is on",
                   "Two-factor authentication was turned on for your Doorvoer account.\n"
                   "If this was not you, reset your password and contact your administrator.")


def two_factor_disabled(settings: Settings, user: User) -> EmailMessage:
    return message(settings, user.email, "Two-factor authentication is off",
                   "Two-factor authentication was turned off for your Doorvoer account.\n"
                   "If this was not you, reset your password and contact your administrator.")


def recovery_code_used(settings: Settings, user: User, remaining: int) -> EmailMessage:
    return message(settings, user.email, "A recovery code was used",
                   "A recovery code was used to log in to your Doorvoer account.\n"
                   f"You have {remaining} unused recovery codes left.\n"
                   "If this was not you, reset your password and contact your administrator.")


def recovery_codes_renewed(settings: Settings, user: User) -> EmailMessage:
    return message(settings, user.email, "New recovery codes",
                   "New recovery codes were made for your Doorvoer account; the old ones "
                   "no longer work.\n"
                   "If this was not you, reset your password and contact your administrator.")


def password_changed(settings: Settings, user: User) -> EmailMessage:
    return message(settings, user.email, "Your password was changed",
                   "The password of your Doorvoer account was changed, and every session "
                   "that was logged in with the old one has ended.\n"
                   "If this was not you, reset your password at once and contact your "
                   "administrator.")


def invitation(settings: Settings, to: str, tenant_name: str, inviter: str, role: str,
               link: str, expires: datetime) -> EmailMessage:
    return message(settings, to, f"You are invited to {tenant_name} on Doorvoer",
                   f"{inviter} invited you to the Doorvoer portal of {tenant_name}, "
                   f"as {role}.\n\n"
                   f"To accept, open this link and choose a password:\n{link}\n\n"
                   f"The link works once and expires on {_when(expires)}.\n"
                   "If you did not expect this, ignore this e-mail: nothing happens "
                   "unless the link is used.")


def password_reset(settings: Settings, user: User, link: str,
                   expires: datetime) -> EmailMessage:
    return message(settings, user.email, "Reset your Doorvoer password",
                   "Someone (hopefully you) asked to reset the password of your Doorvoer "
                   "account.\n\n"
                   f"To choose a new password, open this link:\n{link}\n\n"
                   f"The link works once and expires at {_when(expires)}.\n"
                   "If you did not ask for this, ignore this e-mail: your password stays "
                   "as it is.")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
