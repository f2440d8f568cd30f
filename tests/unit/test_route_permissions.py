"""Each authenticated route's permission is declared at the route (`requires(Action.X)`,
kit/security/permissions.py), read here from the app's own dependency tree: the table
below is the API's permission map. A route whose rule depends on the object (delete own
vs any, role changes decided by the database function) has no action here; its rule is
in the service and tests/integration/test_rbac_matrix.py proves it over HTTP."""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from rampart.kit.security.roles import ALLOWED, Action, Role

ROUTE_ACTIONS: dict[tuple[str, str], Action] = {
    ("POST", "/api/v1/assessments"): Action.CREATE,
    ("POST", "/api/v1/assessments/{assessment_id}/evidence"): Action.CREATE,
    ("GET", "/api/v1/users"): Action.READ,
    ("POST", "/api/v1/invitations"): Action.MANAGE_MEMBERS,
    ("GET", "/api/v1/billing"): Action.MANAGE_BILLING,
    ("POST", "/api/v1/billing/checkout"): Action.MANAGE_BILLING,
    ("POST", "/api/v1/billing/portal"): Action.MANAGE_BILLING,
    ("GET", "/api/v1/audit"): Action.READ_AUDIT,
}


def actions(dependant: Dependant) -> set[Action]:
    found = set()
    for dependency in dependant.dependencies:
        action = getattr(dependency.call, "action", None)
        if action is not None:
            found.add(action)
        found |= actions(dependency)
    return found


def declared() -> dict[tuple[str, str], Action]:
    from rampart.app import create_app

    table = {}
    for context in iter_route_contexts(create_app().routes):
        route = context.route
        if not isinstance(route, APIRoute):
            continue
        found = actions(route.dependant)
        assert len(found) <= 1, (route.path, found)
        for method in route.methods if found else ():
            table[(method, route.path)] = next(iter(found))
    return table


def test_each_route_declares_the_action_it_needs():
    assert declared() == ROUTE_ACTIONS


def test_billing_is_for_owners_and_admins_and_the_audit_trail_for_owners():
    assert ALLOWED[Action.MANAGE_BILLING] == {Role.OWNER, Role.ADMIN}
    assert ALLOWED[Action.READ_AUDIT] == {Role.OWNER}
