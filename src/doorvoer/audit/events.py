"""What the audit log records: one tag per kind of event, shaped `area:subject:verb`
(like pypi/warehouse's event tags). Each entry's `object` is what was acted on: a
transfer's id and path, a person's e-mail, a process's name; never file content, never
a secret."""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    # Signing in (people: the portal; accounts: SFTP and API tokens)
    PORTAL_LOGIN_SUCCEEDED = "portal:login:succeeded"
    PORTAL_LOGIN_FAILED = "portal:login:failed"
    PORTAL_LOGOUT = "portal:logout:done"
    SFTP_LOGIN_SUCCEEDED = "sftp:login:succeeded"
    SFTP_LOGIN_FAILED = "sftp:login:failed"
    SFTP_SESSION_STARTED = "sftp:session:started"
    API_SESSION_STARTED = "api:session:started"
    API_LOGIN_FAILED = "api:login:failed"
    # One's own account
    PASSWORD_CHANGED = "person:password:changed"
    PASSWORD_RESET = "person:password:reset"
    TWO_FACTOR_ENABLED = "person:2fa:enabled"
    TWO_FACTOR_DISABLED = "person:2fa:disabled"
    RECOVERY_CODE_USED = "person:recovery_code:used"
    RECOVERY_CODES_RENEWED = "person:recovery_codes:renewed"
    # Uploads (both doors)
    UPLOAD_ACCEPTED = "upload:file:accepted"
    UPLOAD_INTERRUPTED = "upload:file:interrupted"
    UPLOAD_REFUSED = "upload:file:refused"
    UPLOAD_RENAMED = "upload:file:renamed"
    UPLOAD_REMOVED = "upload:file:removed"
    UPLOAD_DISCARDED = "upload:file:discarded"
    # Processing, delivery, pickup, erasure
    TRANSFER_PROCESSED = "transfer:file:processed"
    TRANSFER_FAILED = "transfer:file:failed"
    INPUT_ERASED = "transfer:input:erased"
    OUTPUT_ERASED = "transfer:output:erased"
    DELIVERY_DONE = "delivery:push:delivered"
    DELIVERY_FAILED = "delivery:push:failed"
    OUTBOX_FETCHED = "outbox:file:fetched"
    OUTBOX_REMOVED = "outbox:file:removed"
    OUTBOX_EXPIRED = "outbox:file:expired"
    # Changes to the tenant's set-up, and by whom
    TENANT_CREATED = "tenant:tenant:created"
    TENANT_REPORTING_CHANGED = "tenant:reporting:changed"
    TENANT_CONTRACT_CHANGED = "tenant:contract:changed"
    TENANT_CONTACTS_CHANGED = "tenant:contacts:changed"
    USER_CREATED = "user:person:created"
    USER_INVITED = "user:invitation:sent"
    USER_INVITATION_REVOKED = "user:invitation:revoked"
    USER_JOINED = "user:invitation:accepted"
    USER_REMOVED = "user:person:removed"
    USER_SUSPENDED = "user:person:suspended"
    USER_RESUMED = "user:person:resumed"
    ACCOUNT_CREATED = "account:sftp:created"
    TOKEN_CREATED = "token:api:created"
    TOKEN_REVOKED = "token:api:revoked"
    PROCESS_APPLIED = "process:spec:applied"
    PROCESS_SHARING_CHANGED = "process:sharing:changed"  # columns or parties (P8)
    CONNECTION_SET = "connection:sftp:set"
    # Reading the log itself
    AUDIT_EXPORTED = "audit:log:exported"
    TENANT_EXPORTED = "privacy:export:created"
    # A tenant's erasure (P19): scheduled, cancelled, the chain's last entry; then, in
    # the operator's chain, by internal id only, that it ran
    ERASURE_REQUESTED = "privacy:erasure:scheduled"
    ERASURE_CANCELLED = "privacy:erasure:cancelled"
    ERASURE_STARTED = "privacy:erasure:started"
    TENANT_ERASED = "privacy:erasure:done"
    # Incidents (P18): recorded and updated (the operator's chain), each tenant's notice
    # and acknowledgement (its own chain), an alert when notices are late
    INCIDENT_RECORDED = "privacy:incident:recorded"
    INCIDENT_UPDATED = "privacy:incident:updated"
    INCIDENT_NOTIFIED = "privacy:incident:notified"
    INCIDENT_ACKNOWLEDGED = "privacy:incident:acknowledged"
    INCIDENT_OVERDUE = "privacy:incident:overdue"
    # Sub-processors (P17): an addition or change announced, a tenant's objection, its
    # consent to one outside the EEA (and its withdrawal)
    SUBPROCESSOR_ANNOUNCED = "privacy:subprocessor:announced"
    SUBPROCESSOR_OBJECTED = "privacy:subprocessor:objected"
    SUBPROCESSOR_CONSENTED = "privacy:subprocessor:consented"
    SUBPROCESSOR_CONSENT_WITHDRAWN = "privacy:subprocessor:consent_withdrawn"
    # Usage statistics (P21): a day's noisy figures released (the operator's chain), a
    # tenant's opt-out or opt-in (its own)
    USAGE_RELEASED = "privacy:usage:released"
    USAGE_OPTED = "privacy:usage:opted"
    # Support access the tenant opens (P12), its instructions (P10), the thread (P13)
    GRANT_REQUESTED = "grant:request:created"
    GRANT_APPROVED = "grant:request:approved"
    GRANT_REFUSED = "grant:request:refused"
    GRANT_LAPSED = "grant:request:expired"  # unanswered for 48 hours
    GRANT_FIRST_USED = "grant:access:first_used"
    GRANT_EXPIRED = "grant:access:expired"
    GRANT_REVOKED = "grant:access:revoked"
    INSTRUCTION_FILED = "instruction:record:filed"
    # Inspection windows (P6): opened under an `inspect` grant, files kept, each view
    INSPECT_WINDOW_OPENED = "inspection:window:opened"
    INSPECT_FILE_KEPT = "inspection:file:kept"
    INSPECT_FILE_VIEWED = "inspection:file:viewed"
    INSPECT_WINDOW_CLOSED = "inspection:window:closed"
    SUPPORT_MESSAGE = "support:message:posted"
    # Staff: every request for a tenant's data, allowed or denied
    STAFF_ACCESS_ALLOWED = "staff:access:allowed"
    STAFF_ACCESS_DENIED = "staff:access:denied"


# Events after which the node signs the chain's head at once: the tenant's start, every
# grant, instruction, inspection-window, erasure and incident event.
CHECKPOINT_AT_ONCE = frozenset({
    Event.TENANT_CREATED, Event.GRANT_REQUESTED, Event.GRANT_APPROVED, Event.GRANT_REFUSED,
    Event.GRANT_LAPSED, Event.GRANT_FIRST_USED, Event.GRANT_EXPIRED, Event.GRANT_REVOKED,
    Event.INSTRUCTION_FILED, Event.INSPECT_WINDOW_OPENED, Event.INSPECT_FILE_KEPT,
    Event.INSPECT_FILE_VIEWED, Event.INSPECT_WINDOW_CLOSED, Event.ERASURE_REQUESTED,
    Event.ERASURE_CANCELLED, Event.ERASURE_STARTED, Event.TENANT_ERASED,
    Event.INCIDENT_RECORDED, Event.INCIDENT_UPDATED, Event.INCIDENT_NOTIFIED,
    Event.INCIDENT_ACKNOWLEDGED, Event.SUBPROCESSOR_ANNOUNCED, Event.SUBPROCESSOR_OBJECTED,
    Event.SUBPROCESSOR_CONSENTED, Event.SUBPROCESSOR_CONSENT_WITHDRAWN})
