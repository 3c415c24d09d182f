"""Health, readiness and meta responses."""

from typing import Literal

from pydantic import BaseModel

CheckStatus = Literal["ok", "error"]


class Liveness(BaseModel):
    """The process is up and serving."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether every dependency answered, and each one's result."""

    status: CheckStatus
    checks: dict[str, CheckStatus]


class Meta(BaseModel):
    """What is running: the service's name, version and environment."""

    name: str
    version: str
    environment: str
