"""The auth quota covers every route that checks a password or a mailed token, by method.

The list the rate limiter reads (`ROUTE_PATHS.credentials`) is compared with the routes the
app mounts: a password route left out would let each stolen session guess on its user's own
general quota instead of the client's auth quota.
"""

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api import ROUTE_PATHS, checks_password
from app.auth.deps import RequireScopes
from app.main import create_app
from tests.harness import make_settings


def mounted_routes() -> list[tuple[str, APIRoute]]:
    """Each API route the app mounts, with the prefix its router was included under."""
    routes = []
    for included in create_app(make_settings()).routes:
        router = getattr(included, "original_router", None)  # FastAPI includes lazily
        if router is None:
            continue
        prefix = included.include_context.prefix  # type: ignore[attr-defined]
        routes += [(prefix, route) for route in router.routes if isinstance(route, APIRoute)]
    return routes


ROUTES = mounted_routes()


def superuser_only(dependant: Dependant) -> bool:
    return any(
        (isinstance(sub.call, RequireScopes) and sub.call.superuser) or superuser_only(sub)
        for sub in dependant.dependencies
    )


def test_every_route_that_checks_a_password_is_on_the_auth_quota() -> None:
    checking = [(prefix, route) for prefix, route in ROUTES if checks_password(route)]
    fixed = {
        (method, prefix + route.path)
        for prefix, route in checking
        if "{" not in route.path
        for method in route.methods or ()
    }
    assert ("DELETE", "/api/v1/users/me") in fixed
    assert ("POST", "/auth/login") in fixed
    assert fixed <= set(ROUTE_PATHS.credentials)
    # A templated path cannot be matched before routing; those routes are a superuser's only.
    templated = [(prefix, route) for prefix, route in checking if "{" in route.path]
    assert {prefix + route.path for prefix, route in templated} == {"/api/v1/users/{user_id}"}
    assert all(superuser_only(route.dependant) for _, route in templated)


def test_every_credential_route_is_a_route_of_the_app() -> None:
    mounted = {
        (method, prefix + route.path) for prefix, route in ROUTES for method in route.methods or ()
    }
    assert set(ROUTE_PATHS.credentials) <= mounted
    assert len(set(ROUTE_PATHS.credentials)) == len(ROUTE_PATHS.credentials)
