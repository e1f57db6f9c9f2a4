"""What the vault refuses or cannot do. None of them quotes a byte of a file."""

from __future__ import annotations


class VaultError(Exception):
    """The vault cannot be used as configured (its master key), or a blob is gone."""


class DiskFull(OSError):
    """The vault's disk has no room left."""


class DecryptionError(ValueError):
    """The ciphertext is damaged, cut off or not for this key."""
