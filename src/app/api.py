"""Routers: every domain's router is included here, under `/api/v1` unless it is legacy."""

import re
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.api_keys.router import CREDENTIAL_PATHS as API_KEYS_CREDENTIAL_PATHS
from app.api_keys.router import router as api_keys_router
from app.auth.deps import get_login_throttle
from app.auth.proof import get_identity_check
from app.auth.router import CREDENTIAL_PATHS as AUTH_CREDENTIAL_PATHS
from app.auth.router import LEGACY_CREDENTIAL_PATHS
from app.auth.router import legacy_local_router as legacy_login_router
from app.auth.router import legacy_router as legacy_auth_router
from app.auth.router import router as auth_router
from app.core.config import Settings
from app.health.router import METRICS_PATH, PROBES
from app.health.router import metrics_router as health_metrics_router
from app.health.router import root_router as health_root_router
from app.health.router import router as health_router
from app.items.router import router as items_router
from app.jobs.router import router as jobs_router
from app.users.router import CREDENTIAL_PATHS as USERS_CREDENTIAL_PATHS
from app.users.router import local_router as users_local_router
from app.users.router import router as users_router

API_ROOT = "/api"  # every version of the API lives below it
API_PREFIX = f"{API_ROOT}/v1"
LOGIN_PATH = f"{API_PREFIX}{auth_router.prefix}/login"  # the OAuth2 password form
# Each router straight on the app: every level of nesting costs time on every request.
VERSIONED_ROUTERS = (health_router, users_router, api_keys_router, items_router, jobs_router)
# Password and local-token routes: mounted only while this service owns the identities.
LOCAL_VERSIONED_ROUTERS = (auth_router, users_local_router)
# Outside /api/v1 (see `include_routers`).
UNVERSIONED_ROUTERS = (
    health_root_router,
    health_metrics_router,
    legacy_auth_router,
    legacy_login_router,
)
# A route that resolves one of these checks a password (a login, or a proof of identity).
PASSWORD_CHECKS = (get_login_throttle, get_identity_check)


def checks_password(route: APIRoute) -> bool:
    """Whether `route` checks a password: one of its dependencies, at any depth, does."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call in PASSWORD_CHECKS:
            return True
        pending.extend(dependant.dependencies)
    return False


def password_routes(router: APIRouter, prefix: str = "") -> list[tuple[str, str]]:
    """The `(method, path)` of each route of `router` that checks a password.

    Only fixed paths: the limiter matches paths before routing, and a template such as
    `/users/{user_id}` would also take `/users/me`, another route. The routes with one are a
    superuser's (`PATCH`, `DELETE /users/{user_id}`): a wrong password there counts against
    the superuser's own login throttle, the one account such a guess can reach.
    """
    return [
        (method, prefix + route.path)
        for route in router.routes
        if isinstance(route, APIRoute) and "{" not in route.path and checks_password(route)
        for method in sorted(route.methods or ())
    ]


def _posts(prefix: str, paths: tuple[str, ...]) -> list[tuple[str, str]]:
    return [("POST", prefix + path) for path in paths]


@dataclass(frozen=True, slots=True)
class RoutePaths:
    """The paths the middleware treat specially, named where the routes are defined."""

    # Where API routes live, every version and the legacy paths: rate limited, never cached.
    api_roots: tuple[str, ...]
    unlimited: tuple[str, ...]  # below an API root, never rate limited (probes)
    # `(method, path)` of the routes that check or issue credentials: the auth quota.
    credentials: tuple[tuple[str, str], ...]
    # Asked every few seconds by machines (scrapes, probes): no trace, which would say nothing.
    untraced: tuple[str, ...] = ()
    # Never shed, never refused by country: probes and scrapes must answer a busy worker.
    probes: tuple[str, ...] = ()


ROUTE_PATHS = RoutePaths(
    api_roots=(API_ROOT + "/", legacy_auth_router.prefix + "/"),
    unlimited=(API_PREFIX + PROBES,),
    credentials=tuple(
        dict.fromkeys(  # in order, once each
            [
                # Tokens checked or issued without a password: named by each router.
                *_posts(API_PREFIX + auth_router.prefix, AUTH_CREDENTIAL_PATHS),
                *_posts(API_PREFIX + users_local_router.prefix, USERS_CREDENTIAL_PATHS),
                *_posts(API_PREFIX + api_keys_router.prefix, API_KEYS_CREDENTIAL_PATHS),
                *_posts(legacy_login_router.prefix, LEGACY_CREDENTIAL_PATHS),
                # Passwords: found from each route's dependencies, so none is left out.
                *(
                    route
                    for router in (*VERSIONED_ROUTERS, *LOCAL_VERSIONED_ROUTERS)
                    for route in password_routes(router, API_PREFIX)
                ),
                *(route for router in UNVERSIONED_ROUTERS for route in password_routes(router)),
            ]
        )
    ),
    untraced=(
        METRICS_PATH,
        *(route.path for route in health_root_router.routes if isinstance(route, APIRoute)),
        *(
            API_PREFIX + route.path
            for route in health_router.routes
            if isinstance(route, APIRoute) and route.path.startswith(PROBES)
        ),
    ),
    probes=("/health", API_PREFIX + PROBES, METRICS_PATH),
)


def include_routers(app: FastAPI, settings: Settings) -> None:
    """Mount every router; password and local-token routes only while this service owns them.

    With an external identity provider those routes are not mounted at all, so they answer
    exactly like a path that never existed.
    """
    local = settings.auth.provider == "local"
    versioned = [*VERSIONED_ROUTERS, *(LOCAL_VERSIONED_ROUTERS if local else ())]
    for router in versioned:
        _include(app, router, prefix=API_PREFIX)

    # Outside the versioned API: the load balancer's health check, and the first version's
    # auth paths that existing clients still call.
    _include(app, health_root_router)
    if settings.metrics.enabled:
        _include(app, health_metrics_router)
    _include(app, legacy_auth_router)
    if local:
        _include(app, legacy_login_router)


def _include(app: FastAPI, router: APIRouter, prefix: str = "") -> None:
    app.include_router(
        answer_head_like_get(router), prefix=prefix, generate_unique_id_function=operation_id
    )


def operation_id(route: APIRoute) -> str:
    """The route's OpenAPI `operationId`: its name and path, then its documented method.

    FastAPI's default takes the first method of a set, whose order changes from process to
    process once a GET route also answers HEAD: the document would change with it.
    """
    named = set(route.methods or ())
    methods = sorted(named - {"HEAD"} or named)
    return re.sub(r"\W", "_", f"{route.name}{route.path_format}") + f"_{methods[0].lower()}"


def answer_head_like_get(router: APIRouter) -> APIRouter:
    """Let every GET route of `router` answer HEAD too, as RFC 9110 asks and Starlette's do.

    FastAPI routes answer only the methods they name. The server sends the headers of the GET
    answer without its body; the OpenAPI document leaves the implied HEAD operations out. Done
    on the router before it is included (inclusion copies each route's methods); walking the
    app's effective route contexts afterwards would build every route's dependencies (~150 ms
    an app).
    """
    for route in router.routes:
        if isinstance(route, APIRoute) and route.methods and "GET" in route.methods:
            route.methods.add("HEAD")
    return router
