#!/usr/bin/env python3
"""asyncssh's own SFTP server and nothing else: the benchmark's second reference.

    python benchmarks/bare_sftp.py PORT ROOT AUTHORIZED_KEY HOST_KEY

Serves SFTP on 127.0.0.1:PORT with asyncssh's stock `SFTPServer`, chrooted to ROOT:
it writes each upload to a file as OpenSSH's sftp-server does, and does nothing
else (no database, no vault, no transforms). It runs on uvloop, as the Doorvoer
node does, and accepts one public key. No Doorvoer code server can move small
files faster than this, since Doorvoer's SFTP door is an asyncssh server too:
its rate against OpenSSH's is the ceiling for (a)'s ratio on the machine at hand.
"""

from __future__ import annotations

import asyncio
import sys

import asyncssh
import uvloop


def main() -> None:
    port, root, authorized, host_key = sys.argv[1:5]
    allowed = asyncssh.read_public_key(authorized)

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return key.public_data == allowed.public_data

    async def serve() -> None:
        await asyncssh.create_server(
            Server, "127.0.0.1", int(port), server_host_keys=[host_key],
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root.encode()),
            allow_scp=False)
        await asyncio.Event().wait()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
