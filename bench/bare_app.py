"""The bare FastAPI baseline: the same handlers as the real app, no middleware, no auth."""

from fastapi import FastAPI

from app.health.schemas import Liveness, Meta

app = FastAPI()


@app.get("/api/v1/health/live")
async def live() -> Liveness:
    """The same response as the real app's liveness probe."""
    return Liveness()


@app.get("/api/v1/meta")
async def meta() -> Meta:
    """The same response as the real app's /api/v1/meta."""
    return Meta(name="Production FastAPI Backend", version="0.1.0", environment="local")
