"""The SSH side of the SFTP door: who logs in (P14, P15). The sign-in service decides;
this only asks it and counts the account's connections."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncssh

from doorvoer.accounts import signin
from doorvoer.accounts.errors import Throttled
from doorvoer.accounts.signin import Login, sign_in_account
from doorvoer.background import spawn
from doorvoer.context import Context
from doorvoer.db import unless_waiting
from doorvoer.sftp import protocol

log = logging.getLogger("doorvoer.sftp")


class SessionCounter:
    """Open connections per account, on this node."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = defaultdict(int)


class DoorvoerSSHServer(asyncssh.SSHServer):
    def __init__(self, ctx: Context, sessions: SessionCounter) -> None:
        self._ctx = ctx
        self._sessions = sessions
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = "?"
        self._counted: str | None = None
        self._failures = 0
        self._method = "?"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted is not None:
            self._sessions.open[self._counted] -= 1
            self._counted = None

    def begin_auth(self, username: str) -> bool:
        return True

    def auth_completed(self) -> None:
        assert self._conn is not None
        login = self._conn.get_extra_info("doorvoer_login")
        if isinstance(login, Login):
            in_background(self._ctx, signin.signed_in_account, login, self._method,
                          source=self._peer)

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def _sign_in(self, check: Callable[[], Login | None], *, on_loop: bool
                       ) -> Login | None:
        """A sign-in step in its own unit of work: a key check (a read or two) on the
        event loop when SQLite's writer is free, a password (argon2) in a thread."""
        try:
            if on_loop:
                with unless_waiting(self._ctx.engine) as free:
                    if free:
                        return check()
            return await asyncio.to_thread(check)
        except Throttled:
            log.warning("login throttled", extra={"peer": self._peer})
            return None

    def _accept(self, login: Login) -> bool:
        assert self._conn is not None
        key = login.account_id
        if self._counted == key:
            return True  # asyncssh asks twice for a key: the query, then the signature
        if self._sessions.open[key] >= self._sessions.limit:
            log.warning("session limit reached", extra={"account": login.account_id})
            return False
        self._sessions.open[key] += 1
        self._counted = key
        self._conn.set_extra_info(doorvoer_login=login)
        log.info("login", extra={"account": login.account_id, "tenant": login.tenant_id,
                                 "peer": self._peer})
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        def check() -> Login | None:
            with self._ctx.unit(source=self._peer) as w:
                return sign_in_account(w, username, self._peer, password=password)

        login = await self._sign_in(check, on_loop=False)
        self._method = "password"
        if login is None:
            self._failures += 1
            if self._failures >= protocol.MAX_AUTH_ATTEMPTS and self._conn is not None:
                self._conn.close()
            return False
        return self._accept(login)

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        def check() -> Login | None:
            with self._ctx.reading(source=self._peer) as w:
                return sign_in_account(w, username, self._peer, key=key)

        login = await self._sign_in(check, on_loop=True)
        self._method = f"key {key.get_fingerprint('sha256')}"
        return login is not None and self._accept(login)


def in_background(ctx: Context, fn: Callable[..., None], *args: Any,
                  source: str | None = None) -> None:
    """A unit of work that nothing waits for (an audit entry of a login), off the event
    loop."""

    def run() -> None:
        with ctx.unit(source=source) as w:
            fn(w, *args)

    spawn(asyncio.to_thread(run), getattr(fn, "__name__", "step"))
