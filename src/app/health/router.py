"""Health, readiness and meta endpoints."""

from fastapi import APIRouter, Request, Response, status

from app.deps import EngineDep, OptionalRedisDep, SettingsDep, settings_of
from app.health import service as health_service
from app.health.schemas import Liveness, Meta, Readiness

# `/health` lives outside the versioned API: load balancers and probes hard-code it.
root_router = APIRouter(tags=["health"])
router = APIRouter(tags=["health"])
# The probes: below the API prefix, but never rate limited.
PROBES = "/health"


@root_router.get("/health")
async def health() -> Liveness:
    """Answer `{"status": "ok"}` while the process serves requests."""
    return Liveness()


@router.get(f"{PROBES}/live")
async def live() -> Liveness:
    """Liveness probe: the process is up (checks nothing else, so it never flaps)."""
    return Liveness()


@router.get(
    f"{PROBES}/ready",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness}},
)
async def ready(
    response: Response, engine: EngineDep, redis: OptionalRedisDep, settings: SettingsDep
) -> Readiness:
    """Readiness probe: 200 when the database (and Redis, if set) answer, else 503."""
    checks = await health_service.check_dependencies(
        engine=engine, redis=redis, timeout=settings.observability.health_check_timeout
    )
    healthy = all(result == "ok" for result in checks.values())
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="ok" if healthy else "error", checks=checks)


@router.get("/meta")
async def meta(request: Request) -> Meta:
    """Name, version and environment of the running service."""
    # Read directly rather than through SettingsDep: load balancers and benchmarks hit this
    # endpoint, and dependency resolution was a sixth of its cost.
    settings = settings_of(request)
    return Meta(
        name=settings.app.name, version=request.app.version, environment=settings.app.environment
    )
