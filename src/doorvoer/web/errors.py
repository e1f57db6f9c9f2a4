"""The portal's and the API's own refusals; `web/app.py` maps them (and every area's
errors) to pages and answers in one place."""

from __future__ import annotations


class LoginRequired(Exception):
    """No live session: pages redirect to the login, the API answers 401."""


class SecondFactorRequired(Exception):
    """Password accepted, the code is still due."""


class CsrfFailed(Exception):
    pass


class TwoFactorSetupRequired(Exception):
    """A staff user without two-factor: nothing works until it is set up (/account/2fa)."""


class ReauthRequired(Exception):
    """A sensitive action needs a fresh second-factor check (/account/reauth)."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url
