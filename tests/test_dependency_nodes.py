"""What FastAPI resolves on every request of the main routes, counted: the count is the cost.

FastAPI resolves each dependency node on every request, and walks a shared subtree again
where two dependencies use it: ~20 µs a node (docs/benchmarks.md). The counts below are what
the hottest routes resolve now; a new dependency on them must be worth its cost.
"""

import pytest
from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.health.router import router as health_router
from app.items.router import router as items_router
from app.users.router import router as users_router

# Nodes below the endpoint, with a shared subtree counted each time it is walked.
NODES = [
    (health_router, "live", 0),
    (health_router, "meta", 0),
    # Scopes, principal, session: the principal calls the two security schemes itself.
    (users_router, "read_me", 3),
    (items_router, "read_item", 5),  # + the item's loader, and the session again
    (items_router, "list_items", 5),  # + the listing, and the session again
    (items_router, "create_item", 9),  # + the idempotency key, which needs the principal
]


def nodes(dependant: Dependant) -> int:
    return sum(1 + nodes(sub) for sub in dependant.dependencies)


def route(router: APIRouter, name: str) -> APIRoute:
    (found,) = (r for r in router.routes if isinstance(r, APIRoute) and r.name == name)
    return found


@pytest.mark.parametrize(("router", "name", "count"), NODES, ids=[name for _, name, _ in NODES])
def test_the_main_routes_resolve_the_counted_dependencies(
    router: APIRouter, name: str, count: int
) -> None:
    assert nodes(route(router, name).dependant) == count
