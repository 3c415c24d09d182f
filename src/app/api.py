"""Routers: every domain's router is included here, under `/api/v1` unless it is legacy."""

from fastapi import APIRouter

from app.api_keys.router import router as api_keys_router
from app.auth.router import legacy_router as legacy_auth_router
from app.auth.router import router as auth_router
from app.health.router import root_router as health_root_router
from app.health.router import router as health_router
from app.users.router import router as users_router

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(health_router)
api_router.include_router(auth_router)
api_router.include_router(users_router)
api_router.include_router(api_keys_router)

# Routes outside the versioned API: the load balancer's health check, and the first
# version's auth paths that existing clients still call.
root_router = APIRouter()
root_router.include_router(health_root_router)
root_router.include_router(legacy_auth_router)
