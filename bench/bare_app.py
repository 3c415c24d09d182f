"""The baseline for bench/middleware_overhead.py: the same handler on a bare FastAPI app."""

from fastapi import FastAPI

from app.health.schemas import Meta

app = FastAPI()


@app.get("/api/v1/meta")
async def meta() -> Meta:
    """The same response as the real app's /api/v1/meta."""
    return Meta(name="Production FastAPI Backend", version="0.1.0", environment="local")
