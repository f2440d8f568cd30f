"""Who may do what within a tenant: the role table, the route dependency that applies it,
and the caller's current role.

The table is generic (roles × actions on "the tenant's resources"). One idiom applies it:
a route declares the action it needs, `actor: Annotated[Principal, requires(Action.X)]`,
so the permission is visible where the route is (and tests/integration/
test_route_permissions.py lists every route's action). A refusal is 403 `forbidden`, the
same for every id, so it confirms nothing about another tenant's rows. Only rules that
depend on the object stay in the services, after the row is looked up (a member deletes
their own assessment, an admin anyone's: `can_delete`; only an owner invites an owner:
`can_invite`; role changes are decided by the database function).

A caller whose email address is not confirmed may read, not write: every route that
changes anything takes `VerifiedActor` instead of `CurrentActor` (403 `email_not_verified`;
the route guard test walks every authenticated write with such a caller).

The role a request acts with is the database's: a token or session is checked against the
user's token version as the request's transaction opens (kit/security/auth.py), and every
role change bumps that version, so an old token that still says "admin" after a demotion
is refused (401 `token_revoked`) instead of trusted. `CurrentActor` is that checked caller.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends

from rampart.kit.errors import AppError, Forbidden
from rampart.kit.security.auth import CurrentPrincipal, Principal, load_actor
from rampart.kit.security.request_tx import TenantTx


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class Action(StrEnum):
    READ = "read"  # read the tenant's data
    CREATE = "create"  # create resources, owned by their creator
    DELETE_OWN = "delete_own"  # delete a resource one created
    DELETE_ANY = "delete_any"  # delete anyone's resource in the tenant
    MANAGE_MEMBERS = "manage_members"  # invite, and change roles among admin/member/viewer
    MANAGE_OWNERS = "manage_owners"  # invite owners, make owners, change an owner's role
    MANAGE_BILLING = "manage_billing"  # see the plan and usage, check out, open the portal
    READ_AUDIT = "read_audit"  # read the tenant's audit trail


_ALL = frozenset(Role)
# The whole policy, one line per action (docs/security.md "RBAC" shows it as a matrix).
ALLOWED: dict[Action, frozenset[Role]] = {
    Action.READ: _ALL,
    Action.CREATE: frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    Action.DELETE_OWN: frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    Action.DELETE_ANY: frozenset({Role.OWNER, Role.ADMIN}),
    Action.MANAGE_MEMBERS: frozenset({Role.OWNER, Role.ADMIN}),
    Action.MANAGE_OWNERS: frozenset({Role.OWNER}),
    Action.MANAGE_BILLING: frozenset({Role.OWNER, Role.ADMIN}),
    Action.READ_AUDIT: frozenset({Role.OWNER}),
}


def allowed(role: str, action: Action) -> bool:
    """Whether `role` may do `action`; an unknown role may do nothing."""
    return role in ALLOWED[action]


# --- the rules that depend on the object (applied by services, after the lookup) -------------


def can_delete(role: str, *, own: bool) -> bool:
    """Anyone's with DELETE_ANY; one's own with DELETE_OWN."""
    return allowed(role, Action.DELETE_ANY) or (own and allowed(role, Action.DELETE_OWN))


def can_assign(role: str, assigned: str) -> bool:
    """Whether `role` may hand out (or take away) the role `assigned`."""
    if assigned not in _ALL:
        return False
    needed = Action.MANAGE_OWNERS if assigned == Role.OWNER else Action.MANAGE_MEMBERS
    return allowed(role, needed)


def can_invite(role: str, invited_role: str) -> bool:
    return can_assign(role, invited_role)


def can_change_role(role: str, *, current: str, new: str) -> bool:
    """Both the role taken away and the role given must be the actor's to hand out: an
    admin can neither make an owner nor demote one. (The last owner is the service's
    rule: it needs the tenant's other users.)"""
    return can_assign(role, current) and can_assign(role, new)


def require(permitted: bool, message: str = "Your role does not allow this.") -> None:
    """403 unless `permitted`. Call it only on rows the caller can see: another tenant's
    row is a 404 before any permission is asked."""
    if not permitted:
        raise Forbidden(message)


# --- the caller's current role -------------------------------------------------------------


async def current_actor(_tx: TenantTx, principal: CurrentPrincipal) -> Principal:
    """The caller, checked against the database as the request's transaction opened: their
    token version is the user's current one. Every role change bumps that version (the
    only path to a role change, app.user_set_role, does it), so a token or session that
    passes the check carries the user's current role: no read of its own."""
    return principal


CurrentActor = Annotated[Principal, Depends(current_actor)]


class EmailNotVerified(AppError):
    code, status = "email_not_verified", 403
    message = (
        "Confirm your email address first: open the link we mailed you (signing up again "
        "with the address sends a new one)."
    )


async def verified_actor(tx: TenantTx, principal: CurrentPrincipal) -> Principal:
    """The caller, if their email address is confirmed (read in the request's transaction,
    with the plan: once per request); 403 `email_not_verified` else."""
    actor = await load_actor(tx, principal)
    if not actor.verified:
        raise EmailNotVerified()
    return actor


VerifiedActor = Annotated[Principal, Depends(verified_actor)]


# --- at the route ------------------------------------------------------------------------------

_REFUSED = "Your role does not allow this."


def requires(action: Action, message: str = _REFUSED, *, verified: bool = True) -> Any:
    """The route's permission, as a dependency that yields the checked caller:

        actor: Annotated[Principal, requires(Action.CREATE)]

    `verified` (the default, for writes) also asks for a confirmed email address first
    (403 `email_not_verified`, as `VerifiedActor`); a read passes `verified=False`. The
    role is the database's (see `current_actor`)."""

    async def checked(actor: Principal) -> Principal:
        require(allowed(actor.role, action), message)
        return actor

    # Set as objects: FastAPI would look a string annotation up in the module, not here.
    base = verified_actor if verified else current_actor
    checked.__annotations__ = {"actor": Annotated[Principal, Depends(base)], "return": Principal}
    checked.__name__ = f"requires_{action.value}"
    checked.action = action  # type: ignore[attr-defined]  # read by the route table test
    return Depends(checked)
