"""Settings: flags, then DOORVOER_* environment variables, then doorvoer.toml in the
data directory, then defaults."""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from doorvoer.errors import ConfigError

DEFAULT_DATA_DIR = "./doorvoer-data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOORVOER_", extra="forbid")

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str = ""  # default: SQLite file in the data dir
    storage_url: str = ""  # default: the vault folder in the data dir
    master_key: str = ""  # base64 of 32 bytes; default: <data_dir>/master.key (0600)
    # The audit checkpoints' Ed25519 key, in Go's note form (PRIVATE+KEY+...); default:
    # <data_dir>/audit-signing.key (0600), made at init. Nodes of one installation share
    # it and the node name, which names the key and the checkpoints' origin.
    signing_key: str = ""
    node_name: str = ""  # default: this host's name

    sftp_host: str = "0.0.0.0"  # noqa: S104 - a server listens on all interfaces by default
    sftp_port: int = Field(2222, ge=0, le=65535)
    http_host: str = "0.0.0.0"  # noqa: S104
    http_port: int = Field(8443, ge=0, le=65535)
    tls_cert: Path | None = None  # PEM; default: a self-signed one made at init
    tls_key: Path | None = None
    public_url: str = ""  # base of links in e-mails; default https://localhost:<http_port>
    session_idle_s: float = Field(30 * 60, gt=0)
    session_absolute_s: float = Field(12 * 3600, gt=0)
    reauth_s: float = Field(10 * 60, gt=0)  # a fresh 2FA check is good for this long
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=0, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "doorvoer@localhost"

    worker_processes: int = Field(1, ge=0, le=16)  # 0: worker threads in the node process
    workers: int = Field(2, ge=1, le=64)  # worker threads per worker process
    max_file_bytes: int = Field(2 * 1024**3, ge=1)
    max_sessions_per_account: int = Field(16, ge=1)
    max_open_handles: int = Field(64, ge=1)
    max_failed_logins: int = Field(5, ge=1)  # failed sign-ins per name, per window
    max_failed_logins_per_address: int = Field(20, ge=1)  # and per client address
    failed_login_window_s: float = Field(900.0, gt=0)
    reorder_buffer_bytes: int = Field(32 * 1024**2, ge=64 * 1024)
    stat_grace_s: float = Field(30.0, ge=0)  # a just-closed inbox file stays stat-able
    fetch_grace_s: float = Field(10.0, ge=0)  # a fetched output stays fetchable
    erasure_cooling_off_days: float = Field(7.0, ge=0)  # a requested erasure waits
    contract_grace_days: float = Field(30.0, ge=0)  # after a contract ends, then erasure
    subprocessor_notice_days: float = Field(30.0, ge=0)  # announced this long before
    # Who the processor is, for the record of processing (Art. 30(2)(a))
    processor_name: str = "the processor (set DOORVOER_PROCESSOR_NAME)"
    processor_contact: str = ""  # default: mail_from
    processor_dpo: str = ""
    # Anonymised usage statistics (P21): the privacy loss of one day's release, and the
    # most a year's releases may spend together (then nothing more is released that year)
    usage_epsilon: float = Field(0.5, gt=0, le=10)
    usage_yearly_epsilon: float = Field(100.0, gt=0)
    rename_wait_s: float = Field(60.0, ge=0)  # unmatched upload waits for a rename
    lease_s: float = Field(30.0, gt=0)
    push_attempts: int = Field(5, ge=1)
    push_backoff_s: float = Field(2.0, ge=0)
    transform_memory_mb: int = Field(512, ge=16)
    transform_time_s: float = Field(300.0, gt=0)
    # Durable across a crash of the process by default (like SQLite's WAL with
    # synchronous=NORMAL); true also survives power loss: each blob is fsynced before the
    # upload is acknowledged and SQLite commits with synchronous=FULL.
    fsync: bool = False
    log_level: str = "info"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'doorvoer.db').resolve()}"

    @property
    def vault_dir(self) -> Path:
        if not self.storage_url:
            return (self.data_dir / "vault").resolve()
        if self.storage_url.startswith("file://"):
            return Path(self.storage_url.removeprefix("file://"))
        if "://" not in self.storage_url:
            return Path(self.storage_url)
        raise ConfigError(
            f"DOORVOER_STORAGE_URL: unsupported scheme in {self.storage_url.split('://')[0]!r}; "
            "this version stores blobs in a local folder (file:// or a path)"
        )

    @property
    def tls_paths(self) -> tuple[Path, Path]:
        if self.tls_cert and self.tls_key:
            return self.tls_cert, self.tls_key
        return self.data_dir / "tls" / "cert.pem", self.data_dir / "tls" / "key.pem"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"https://localhost:{self.http_port}").rstrip("/")

    @property
    def host_key_path(self) -> Path:
        return self.data_dir / "ssh_host_ed25519_key"

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / "master.key"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / "audit-signing.key"

    @property
    def resolved_node_name(self) -> str:
        """The installation's name in the audit log: letters, digits, '.', '-', '_'."""
        name = self.node_name or socket.gethostname() or "doorvoer"
        return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:63]


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build settings with the documented precedence.

    `overrides` are command-line flags (None means "not given")."""
    flags = {k: v for k, v in overrides.items() if v is not None}
    env_dir = os.environ.get("DOORVOER_DATA_DIR")
    resolved_dir = data_dir or (Path(env_dir) if env_dir else Path(DEFAULT_DATA_DIR))
    file_values: dict[str, Any] = {}
    toml_path = resolved_dir / "doorvoer.toml"
    if toml_path.exists():
        try:
            file_values = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{toml_path}: not valid TOML: {exc}") from None
    env_names = {
        name for name in Settings.model_fields if f"DOORVOER_{name.upper()}" in os.environ
    }
    # File values yield to environment variables, which yield to flags.
    init = {k: v for k, v in file_values.items() if k not in env_names}
    init.update(flags)
    init["data_dir"] = resolved_dir
    try:
        return Settings(**init)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {field}: {first['msg']}") from None
