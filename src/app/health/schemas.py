"""Health, readiness and meta responses."""

from typing import Literal

from pydantic import BaseModel

CheckStatus = Literal["ok", "error"]
ReadinessStatus = Literal["ok", "degraded", "error", "starting", "draining"]


class Liveness(BaseModel):
    """The process is up and serving."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether this process can serve, and each dependency's result.

    `ok`: every dependency answered; `degraded` (still 200): only dependencies the service
    serves without failed, such as Redis when everything using it fails open; `error`: the
    database, or a Redis the rate limiter needs, did not answer; `starting`: the start-up work
    that needs the database has not run yet; `draining`: the process was asked to stop and is
    finishing its requests. The last three answer 503.
    """

    status: ReadinessStatus
    checks: dict[str, CheckStatus]


class Meta(BaseModel):
    """What is running: the service's name, version and environment."""

    name: str
    version: str
    environment: str
