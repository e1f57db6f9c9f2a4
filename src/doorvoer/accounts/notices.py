"""E-mails that tell a user what happened to their account (P14)."""

from __future__ import annotations

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
