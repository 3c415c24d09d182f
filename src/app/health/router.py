"""Health, readiness and meta endpoints."""

from fastapi import APIRouter, Depends, Request, Response, status

from app.core.errors import NotFoundError
from app.core.openapi import problem_responses
from app.core.routing import StrictBodyRoute
from app.deps import (
    EngineDep,
    JobQueueDep,
    LifecycleDep,
    OptionalRedisDep,
    ResourcesDep,
    SettingsDep,
    settings_of,
)
from app.health import service as health_service
from app.health.deps import require_metrics_reader
from app.health.schemas import Liveness, Meta, Readiness
from app.observability.metrics import VARY_ACCEPT

# `/health` lives outside the versioned API: load balancers and probes hard-code it.
root_router = APIRouter(tags=["health"], route_class=StrictBodyRoute)
router = APIRouter(tags=["health"], route_class=StrictBodyRoute)
# Prometheus scrapes it at the root, where exporters live; mounted when METRICS_ENABLED.
metrics_router = APIRouter(tags=["metrics"], route_class=StrictBodyRoute)
# The probes: below the API prefix, but never rate limited.
PROBES = "/health"
METRICS_PATH = "/metrics"


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
    *,
    response: Response,
    engine: EngineDep,
    redis: OptionalRedisDep,
    jobs: JobQueueDep,
    settings: SettingsDep,
    lifecycle: LifecycleDep,
) -> Readiness:
    """Readiness probe: 200 when this process can serve, 503 when it cannot.

    200 `ok` when every dependency answers; 200 `degraded` when only dependencies the service
    can serve without fail (Redis, unless the rate limiter fails closed, and the job broker);
    503 `error` when the database (or a required Redis) does not answer; 503 `draining` from
    the moment the process is asked to stop, so the load balancer stops sending while
    requests in flight finish; 503 `starting` until start-up work has run.
    """
    if lifecycle.draining:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="draining", checks={})
    checks = await health_service.check_dependencies(
        engine=engine, redis=redis, jobs=jobs, timeout=settings.observability.health_check_timeout
    )
    verdict = health_service.verdict(checks, health_service.required_checks(settings))
    if verdict != "error" and not lifecycle.bootstrapped:
        verdict = "starting"
    if verdict not in ("ok", "degraded"):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status=verdict, checks=checks)


@router.get("/meta")
async def meta(request: Request) -> Meta:
    """Name, version and environment of the running service."""
    # Read directly rather than through SettingsDep: load balancers and benchmarks hit this
    # endpoint, and dependency resolution was a sixth of its cost.
    settings = settings_of(request)
    return Meta(
        name=settings.app.name, version=request.app.version, environment=settings.app.environment
    )


@metrics_router.get(
    METRICS_PATH,
    dependencies=[Depends(require_metrics_reader)],
    responses={
        200: {
            "description": "The metrics, in the format `Accept` asks for (`Vary: Accept`).",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        },
        **problem_responses(403),
    },
    response_class=Response,
)
async def metrics(request: Request, resources: ResourcesDep) -> Response:
    """Every metric in Prometheus text format, or OpenMetrics when the `Accept` header asks."""
    if resources.metrics is None:  # METRICS_ENABLED=false mounts no route; tests swap parts
        raise NotFoundError("Metrics are off.")
    body, media_type = await health_service.metrics_exposition(
        resources.metrics, resources.metrics_sampler, accept=request.headers.get("accept")
    )
    return Response(body, media_type=media_type, headers=VARY_ACCEPT)
