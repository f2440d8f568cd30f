"""Who may do what within a tenant: the role table, and the rules that depend on the
object, which services apply after the row is looked up (a member deletes their own
assessment, an admin anyone's: `can_delete`; only an owner invites an owner: `can_invite`;
role changes are decided by the database function).

The table is generic (roles × actions on "the tenant's resources"); routes declare the
action they need with `requires` (kit/security/permissions.py). No web framework here:
the services that apply these rules load in workers and the CLI too.
"""

from __future__ import annotations

from enum import StrEnum

from rampart.kit.errors import Forbidden


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


REFUSED = "Your role does not allow this."


def require(permitted: bool, message: str = REFUSED) -> None:
    """403 unless `permitted`. Call it only on rows the caller can see: another tenant's
    row is a 404 before any permission is asked."""
    if not permitted:
        raise Forbidden(message)
