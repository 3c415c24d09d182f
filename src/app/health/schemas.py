"""Health, readiness and meta responses."""

from typing import Literal

from pydantic import BaseModel

CheckStatus = Literal["ok", "error"]
ReadinessStatus = Literal["ok", "error", "starting", "draining"]


class Liveness(BaseModel):
    """The process is up and serving."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether every dependency answered, and each one's result.

    `starting`: the start-up work that needs the database has not run yet; `draining`: the
    process was asked to stop and is finishing its requests. Both answer 503.
    """

    status: ReadinessStatus
    checks: dict[str, CheckStatus]


class Meta(BaseModel):
    """What is running: the service's name, version and environment."""

    name: str
    version: str
    environment: str
