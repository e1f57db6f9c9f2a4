"""Make a data directory ready: host key, master key, database at the newest schema."""

from __future__ import annotations

import os

import asyncssh

from doorvoer.config import Settings
from doorvoer.context import Context
from doorvoer.migrate import upgrade
from doorvoer.tls import ensure_self_signed


def init_data_dir(settings: Settings) -> Context:
    """Create what is missing (idempotent) and return an open context."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not settings.host_key_path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(settings.host_key_path))
        os.chmod(settings.host_key_path, 0o600)
        key.write_public_key(str(settings.host_key_path) + ".pub")
    if not (settings.tls_cert and settings.tls_key):
        ensure_self_signed(*settings.tls_paths)
    ctx = Context.open(settings)
    upgrade(ctx.engine)
    ctx.signer  # noqa: B018 - the audit signing key is made here, once
    return ctx


def host_key_fingerprint(settings: Settings) -> str:
    return asyncssh.read_public_key(str(settings.host_key_path) + ".pub").get_fingerprint()
