"""Who may do what within a tenant: the role table, one function per action, and the
caller's current role.

The table is generic (roles × actions on "the tenant's resources"); each domain service
applies it to its own resource (assessments/service.py: `can_delete_assessment`, ...).

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
from typing import Annotated

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


_ALL = frozenset(Role)
# The whole policy, one line per action (docs/security.md "RBAC" shows it as a matrix).
ALLOWED: dict[Action, frozenset[Role]] = {
    Action.READ: _ALL,
    Action.CREATE: frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    Action.DELETE_OWN: frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    Action.DELETE_ANY: frozenset({Role.OWNER, Role.ADMIN}),
    Action.MANAGE_MEMBERS: frozenset({Role.OWNER, Role.ADMIN}),
    Action.MANAGE_OWNERS: frozenset({Role.OWNER}),
}


def allowed(role: str, action: Action) -> bool:
    """Whether `role` may do `action`; an unknown role may do nothing."""
    return role in ALLOWED[action]


# --- one function per action ---------------------------------------------------------------


def can_read(role: str) -> bool:
    return allowed(role, Action.READ)


def can_create(role: str) -> bool:
    return allowed(role, Action.CREATE)


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
