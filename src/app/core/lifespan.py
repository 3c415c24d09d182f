"""Start-up and shutdown: every client is created here, stored on `app.state`, then closed."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from app.core.config import Settings
from app.db.session import create_engine, create_session_factory, safe_url
from app.infra.redis import create_redis

log = structlog.get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database engine and Redis pool for the life of the process, then close them."""
    settings: Settings = app.state.settings
    engine = create_engine(settings)
    redis = create_redis(settings)
    app.state.engine = engine
    app.state.session_factory = create_session_factory(engine)
    app.state.redis = redis
    log.info(
        "startup",
        environment=settings.ENVIRONMENT,
        database=safe_url(settings.DATABASE_URL),
        redis=redis is not None,
    )
    # Objects made at start-up live for the whole process; freezing them keeps the garbage
    # collector from scanning them on every collection (measured: p99 fell ~5x on a peer app).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
        log.info("shutdown")
