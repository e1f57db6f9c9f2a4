"""Sending e-mail through the configured SMTP server (aiosmtplib)."""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from doorvoer.config import Settings

log = logging.getLogger("doorvoer.mail")


def message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


async def send(settings: Settings, msg: EmailMessage) -> bool:
    """Send; a failure is logged (never the recipient, the subject or a link: they are
    personal data an erasure could not take back from the log) and reported back."""
    try:
        await aiosmtplib.send(
            msg, hostname=settings.smtp_host, port=settings.smtp_port,
            username=settings.smtp_username or None, password=settings.smtp_password or None,
            start_tls=settings.smtp_starttls, timeout=15,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("mail not sent", extra={"exc_type": type(exc).__name__})
        return False
    return True
