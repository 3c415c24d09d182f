"""Health, readiness and meta endpoints."""

from fastapi import APIRouter, Request, Response, status

from app.deps import EngineDep, OptionalRedisDep, SettingsDep
from app.health import service as health_service
from app.health.schemas import Liveness, Meta, Readiness

# `/health` lives outside the versioned API: load balancers and probes hard-code it.
root_router = APIRouter(tags=["health"])
router = APIRouter(tags=["health"])


@root_router.get("/health")
async def health() -> Liveness:
    """Answer `{"status": "ok"}` while the process serves requests."""
    return Liveness()


@router.get("/health/live")
async def live() -> Liveness:
    """Liveness probe: the process is up (checks nothing else, so it never flaps)."""
    return Liveness()


@router.get(
    "/health/ready",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness}},
)
async def ready(
    response: Response, engine: EngineDep, redis: OptionalRedisDep, settings: SettingsDep
) -> Readiness:
    """Readiness probe: 200 when the database (and Redis, if set) answer, else 503."""
    checks = await health_service.check_dependencies(
        engine=engine, redis=redis, timeout=settings.HEALTH_CHECK_TIMEOUT
    )
    healthy = all(result == "ok" for result in checks.values())
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="ok" if healthy else "error", checks=checks)


@router.get("/meta")
async def meta(request: Request) -> Meta:
    """Name, version and environment of the running service."""
    # The app's settings directly rather than SettingsDep: this is the endpoint load
    # balancers and benchmarks hit, and dependency resolution was a sixth of its cost.
    settings = request.app.state.settings
    return Meta(
        name=settings.APP_NAME, version=request.app.version, environment=settings.ENVIRONMENT
    )
