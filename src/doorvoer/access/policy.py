"""The one authorization policy. Every door asks `authorize(actor, action, resource)`;
no door decides access by itself.

Tenant data is reachable only by people of that tenant, and by support staff while
they hold an active grant of that tenant, within its scopes (P12). Staff without a
grant see tenant names and counts only (P11). The door loads the staff member's active
grants with every request (`Actor.grants`), so a revoked or expired grant stops working
at the next request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from doorvoer.access.errors import Denied


class Role(StrEnum):
    TENANT_ADMIN = "tenant_admin"
    TENANT_MEMBER = "tenant_member"
    EXTERNAL = "external"  # an outside accountant or adviser, invited by a tenant admin
    OPERATOR_ADMIN = "operator_admin"
    SUPPORT = "support"
    SYSADMIN = "sysadmin"
    ACCOUNT = "account"  # a tenant's machine login (SFTP)

    @property
    def is_staff(self) -> bool:
        return self in STAFF

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


STAFF = frozenset({Role.OPERATOR_ADMIN, Role.SUPPORT, Role.SYSADMIN})
TENANT_ROLES = frozenset({Role.TENANT_ADMIN, Role.TENANT_MEMBER, Role.EXTERNAL})
PEOPLE_ROLES = TENANT_ROLES | STAFF


class Action(StrEnum):
    # A tenant's own data
    VIEW_DASHBOARD = "tenant:dashboard:view"
    VIEW_PROCESSES = "tenant:processes:view"
    VIEW_TRANSFERS = "tenant:transfers:view"
    VIEW_REPORTS = "tenant:reports:view"
    UPLOAD = "tenant:files:upload"
    PICKUP = "tenant:files:pickup"
    VIEW_USERS = "tenant:users:view"
    INVITE_USERS = "tenant:users:invite"
    MANAGE_USERS = "tenant:users:manage"
    MANAGE_TOKENS = "tenant:tokens:manage"
    MANAGE_SETTINGS = "tenant:settings:manage"
    VIEW_AUDIT = "tenant:audit:view"
    EXPORT_DATA = "tenant:data:export"  # everything held about the tenant (P20)
    ERASE_DATA = "tenant:data:erase"  # ask for (or cancel) the tenant's erasure (P19)
    VIEW_INCIDENTS = "tenant:incidents:view"  # breach notices to the tenant (P18)
    ACK_INCIDENTS = "tenant:incidents:acknowledge"
    VIEW_SUBPROCESSORS = "tenant:subprocessors:view"  # the register as it concerns it (P17)
    ANSWER_SUBPROCESSORS = "tenant:subprocessors:answer"  # object, consent
    MANAGE_GRANTS = "tenant:grants:manage"  # answer and revoke support's requests
    VIEW_GRANTS = "tenant:grants:view"
    FILE_INSTRUCTIONS = "tenant:instructions:file"
    SUPPORT_THREAD = "tenant:support:write"  # the thread between tenant and support
    INSPECT_FILES = "tenant:files:inspect"  # support: an inspection window (P6), never people
    # The operator's side
    VIEW_TENANT_LIST = "operator:tenants:view"
    MANAGE_TENANTS = "operator:tenants:manage"
    VIEW_STAFF = "operator:staff:view"
    MANAGE_STAFF = "operator:staff:manage"
    REQUEST_GRANTS = "operator:grants:request"  # support asks a tenant for access
    VIEW_ALL_GRANTS = "operator:grants:view"  # which grants exist (never the data)
    MANAGE_INCIDENTS = "operator:incidents:manage"  # record incidents, updates (P18)
    # One's own account
    MANAGE_OWN_ACCOUNT = "self:account:manage"


# What an external user may be given: the admin picks from these when inviting.
EXTERNAL_PERMISSIONS: dict[str, frozenset[Action]] = {
    "reports": frozenset({Action.VIEW_DASHBOARD, Action.VIEW_REPORTS}),
    "transfers": frozenset({Action.VIEW_DASHBOARD, Action.VIEW_TRANSFERS}),
    "processes": frozenset({Action.VIEW_DASHBOARD, Action.VIEW_PROCESSES}),
}

# What a grant's scope opens to the support user holding it, on that tenant only.
GRANT_SCOPES: dict[str, frozenset[Action]] = {
    "reports": frozenset({Action.VIEW_DASHBOARD, Action.VIEW_REPORTS, Action.VIEW_TRANSFERS}),
    "config": frozenset({Action.VIEW_DASHBOARD, Action.VIEW_PROCESSES}),
    "inspect": frozenset({Action.VIEW_DASHBOARD, Action.INSPECT_FILES}),
}
# What a support user may do on a tenant without any grant: talk in its support thread.
_SUPPORT_ANY_TENANT = frozenset({Action.SUPPORT_THREAD})

_MEMBER = frozenset({Action.VIEW_DASHBOARD, Action.VIEW_PROCESSES, Action.VIEW_TRANSFERS,
                     Action.VIEW_REPORTS, Action.UPLOAD, Action.VIEW_USERS,
                     Action.VIEW_GRANTS, Action.FILE_INSTRUCTIONS, Action.SUPPORT_THREAD,
                     Action.VIEW_INCIDENTS, Action.VIEW_SUBPROCESSORS})
_ADMIN = _MEMBER | {Action.INVITE_USERS, Action.MANAGE_USERS, Action.MANAGE_TOKENS,
                    Action.MANAGE_SETTINGS, Action.VIEW_AUDIT, Action.MANAGE_GRANTS,
                    Action.EXPORT_DATA, Action.ERASE_DATA, Action.ACK_INCIDENTS,
                    Action.ANSWER_SUBPROCESSORS}
_STAFF: dict[Role, frozenset[Action]] = {
    Role.OPERATOR_ADMIN: frozenset({Action.VIEW_TENANT_LIST, Action.MANAGE_TENANTS,
                                    Action.VIEW_STAFF, Action.MANAGE_STAFF,
                                    Action.VIEW_ALL_GRANTS, Action.MANAGE_INCIDENTS}),
    Role.SUPPORT: frozenset({Action.VIEW_TENANT_LIST, Action.REQUEST_GRANTS}),
    Role.SYSADMIN: frozenset({Action.VIEW_TENANT_LIST, Action.MANAGE_INCIDENTS}),
}


@dataclass(frozen=True)
class StaffGrant:
    """An active grant as the policy sees it: which tenant, which scopes."""

    id: str
    tenant_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Actor:
    """Who acts: a person logged in to the portal, an SFTP account, or an API token."""

    user_id: str | None
    role: Role
    tenant_id: str | None
    permissions: frozenset[str] = frozenset()  # external users: keys of EXTERNAL_PERMISSIONS
    scopes: frozenset[Action] | None = None  # API tokens: at most these actions
    two_factor: bool = False  # the session passed a second factor (staff must)
    # Who, as the audit log names them: a person's e-mail, an SFTP account's login name,
    # an API token's name; `ref` the id of the account or token (people: `user_id`).
    name: str | None = None
    ref: str | None = None
    grants: tuple[StaffGrant, ...] = ()  # support staff: their active grants
    instruction: str | None = None  # staff: the tenant's instruction a change relies on


@dataclass(frozen=True)
class Resource:
    """What is acted on: a tenant's data (tenant_id), or the operator's side (None)."""

    tenant_id: str | None = None


OPERATOR = Resource(None)


def allowed_actions(actor: Actor) -> frozenset[Action]:
    if actor.role.is_staff:
        base = _STAFF[actor.role] if actor.two_factor else frozenset()
    elif actor.role == Role.TENANT_ADMIN:
        base = _ADMIN
    elif actor.role == Role.TENANT_MEMBER:
        base = _MEMBER
    elif actor.role == Role.ACCOUNT:
        base = frozenset({Action.UPLOAD, Action.PICKUP})
    else:
        base = frozenset().union(*(EXTERNAL_PERMISSIONS.get(p, frozenset())
                                   for p in actor.permissions))
    base = base | {Action.MANAGE_OWN_ACCOUNT} if actor.user_id else base
    return base & actor.scopes if actor.scopes is not None else base


def grant_for(actor: Actor, action: Action, resource: Resource) -> StaffGrant | None:
    """The active grant that lets a support user do `action` on the resource's tenant."""
    if actor.role != Role.SUPPORT or not actor.two_factor or resource.tenant_id is None:
        return None
    for grant in actor.grants:
        if grant.tenant_id == resource.tenant_id and any(
                action in GRANT_SCOPES.get(scope, ()) for scope in grant.scopes):
            return grant
    return None


def is_allowed(actor: Actor, action: Action, resource: Resource = OPERATOR) -> bool:
    if action.value.startswith("tenant:") and actor.role.is_staff:
        if resource.tenant_id is None or not actor.two_factor:
            return False
        return (actor.role == Role.SUPPORT and action in _SUPPORT_ANY_TENANT) or \
            grant_for(actor, action, resource) is not None
    if action not in allowed_actions(actor):
        return False
    if action.value.startswith("tenant:"):
        return resource.tenant_id is not None and resource.tenant_id == actor.tenant_id
    if action.value.startswith("operator:"):
        return actor.role.is_staff and resource.tenant_id is None
    return True


def allowed_on(actor: Actor, tenant_id: str | None) -> frozenset[Action]:
    """Every action the actor may take on this tenant's data (None: no tenant) and on
    the operator's side and its own account: what a page may offer."""
    here = Resource(tenant_id)
    return frozenset(a for a in Action if is_allowed(
        actor, a, here if a.value.startswith("tenant:") else OPERATOR))


def authorize(actor: Actor | None, action: Action, resource: Resource = OPERATOR) -> Actor:
    """Return the actor when the action is allowed; raise Denied otherwise."""
    if actor is None or not is_allowed(actor, action, resource):
        raise Denied(action.value)
    return actor


# ---------------------------------------------------------------- two-factor (P14)


def must_set_up_2fa(role: str, has_2fa: bool) -> bool:
    """Staff cannot work without two-factor: until it is set up, nothing but setting it
    up is open to them."""
    return Role(role).is_staff and not has_2fa


def may_turn_off_2fa(role: str) -> bool:
    """Anybody may turn two-factor off (after a fresh check), except staff."""
    return not Role(role).is_staff
