"""Every table, imported in one place for migrations and `metadata.create_all` checks."""

from doorvoer.accounts.models import (
    Account,
    AccountKey,
    ApiToken,
    EmailToken,
    LoginFailure,
    RecoveryCode,
    User,
    WebSession,
)
from doorvoer.audit.models import AuditEntry, AuditHead, Checkpoint
from doorvoer.db import Base
from doorvoer.privacy.models import (
    Erasure,
    Incident,
    IncidentNotice,
    IncidentUpdate,
    Subprocessor,
    SubprocessorConsent,
    SubprocessorObjection,
    Tombstone,
    UsageRelease,
)
from doorvoer.processes.models import Process
from doorvoer.secrets.models import Connection
from doorvoer.support.models import Grant, InspectionWindow, Instruction, SupportMessage
from doorvoer.tenants.models import Tenant
from doorvoer.transfers.models import Delivery, Transfer
from doorvoer.vault.models import BlobKey

metadata = Base.metadata

__all__ = [
    "Account",
    "AccountKey",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "BlobKey",
    "Checkpoint",
    "Connection",
    "Delivery",
    "EmailToken",
    "Erasure",
    "Grant",
    "Incident",
    "IncidentNotice",
    "IncidentUpdate",
    "InspectionWindow",
    "Instruction",
    "LoginFailure",
    "Process",
    "RecoveryCode",
    "Subprocessor",
    "SubprocessorConsent",
    "SubprocessorObjection",
    "SupportMessage",
    "Tenant",
    "Tombstone",
    "Transfer",
    "UsageRelease",
    "User",
    "WebSession",
    "metadata",
]
