"""The route side of who may do what: the dependency that applies the role table
(kit/security/roles.py) and the caller's current role.

One idiom applies the table: a route declares the action it needs,
`actor: Annotated[Principal, requires(Action.X)]`, so the permission is visible where the
route is (and tests/unit/test_route_permissions.py lists every route's action). A refusal
is 403 `forbidden`, the same for every id, so it confirms nothing about another tenant's
rows. Only rules that depend on the object stay in the services (kit/security/roles.py).

A caller whose email address is not confirmed may read, not write: every route that
changes anything takes `VerifiedActor` instead of `CurrentActor` (403 `email_not_verified`;
the route guard test walks every authenticated write with such a caller).

The role a request acts with is the database's: a token or session is checked against the
user's token version as the request's transaction opens (kit/security/auth.py), and every
role change bumps that version, so an old token that still says "admin" after a demotion
is refused (401 `token_revoked`) instead of trusted. `CurrentActor` is that checked caller.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from rampart.kit.errors import AppError
from rampart.kit.security.auth import CurrentPrincipal, load_actor
from rampart.kit.security.principal import Principal
from rampart.kit.security.request_tx import TenantTx
from rampart.kit.security.roles import REFUSED, Action, allowed, require

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


def requires(action: Action, message: str = REFUSED, *, verified: bool = True) -> Any:
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
