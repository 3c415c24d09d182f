"""Routers: every domain's router is included here, under `/api/v1` unless it is legacy."""

from fastapi import FastAPI

from app.api_keys.router import router as api_keys_router
from app.auth.router import legacy_local_router as legacy_login_router
from app.auth.router import legacy_router as legacy_auth_router
from app.auth.router import router as auth_router
from app.core.config import Settings
from app.health.router import root_router as health_root_router
from app.health.router import router as health_router
from app.items.router import router as items_router
from app.users.router import local_router as users_local_router
from app.users.router import router as users_router

API_PREFIX = "/api/v1"


def include_routers(app: FastAPI, settings: Settings) -> None:
    """Mount every router; password and local-token routes only while this service owns them.

    With an external identity provider those routes are not mounted at all, so they answer
    exactly like a path that never existed.
    """
    # Each router straight on the app: every level of nesting costs time on every request.
    versioned = [health_router, users_router, api_keys_router, items_router]
    if settings.AUTH_PROVIDER == "local":
        versioned += [auth_router, users_local_router]
    for router in versioned:
        app.include_router(router, prefix=API_PREFIX)

    # Outside the versioned API: the load balancer's health check, and the first version's
    # auth paths that existing clients still call.
    app.include_router(health_root_router)
    app.include_router(legacy_auth_router)
    if settings.AUTH_PROVIDER == "local":
        app.include_router(legacy_login_router)
