"""Routers: every domain's router is included here, under `/api/v1` unless it is legacy."""

import re
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.api_keys.router import CREDENTIAL_PATHS as API_KEYS_CREDENTIAL_PATHS
from app.api_keys.router import router as api_keys_router
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


@dataclass(frozen=True, slots=True)
class RoutePaths:
    """The paths the middleware treat specially, named where the routes are defined."""

    # Where API routes live, every version and the legacy paths: rate limited, never cached.
    api_roots: tuple[str, ...]
    unlimited: tuple[str, ...]  # below an API root, never rate limited (probes)
    credentials: tuple[str, ...]  # POSTs that check or issue credentials: the auth quota
    # Asked every few seconds by machines (scrapes, probes): no trace, which would say nothing.
    untraced: tuple[str, ...] = ()
    # Never shed, never refused by country: probes and scrapes must answer a busy worker.
    probes: tuple[str, ...] = ()


ROUTE_PATHS = RoutePaths(
    api_roots=(API_ROOT + "/", legacy_auth_router.prefix + "/"),
    unlimited=(API_PREFIX + PROBES,),
    credentials=(
        *(API_PREFIX + auth_router.prefix + path for path in AUTH_CREDENTIAL_PATHS),
        *(API_PREFIX + users_local_router.prefix + path for path in USERS_CREDENTIAL_PATHS),
        *(API_PREFIX + api_keys_router.prefix + path for path in API_KEYS_CREDENTIAL_PATHS),
        *(legacy_login_router.prefix + path for path in LEGACY_CREDENTIAL_PATHS),
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
    # Each router straight on the app: every level of nesting costs time on every request.
    versioned = [health_router, users_router, api_keys_router, items_router, jobs_router]
    if local:
        versioned += [auth_router, users_local_router]
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
