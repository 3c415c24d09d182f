"""Routers: every domain's router is included here, under `/api/v1` unless it is legacy."""

from fastapi import APIRouter

from app.health.router import root_router as health_root_router
from app.health.router import router as health_router

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(health_router)

# Routes outside the versioned API: the load balancer's health check.
root_router = APIRouter()
root_router.include_router(health_root_router)
