"""The application factory: the single place where the service is wired together."""

from importlib.metadata import version
from typing import Any

from fastapi import FastAPI

from app import middleware
from app.api import include_routers
from app.core.config import Settings, get_settings
from app.core.lifespan import lifespan
from app.core.logging import configure_logging
from app.core.openapi import build_openapi, install_docs
from app.core.problems import register_exception_handlers
from app.observability.tracing import telemetry_config

DISTRIBUTION = "production-fastapi-backend"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI application; nothing connects until its lifespan starts."""
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(
        title=settings.APP_NAME,
        version=version(DISTRIBUTION),
        lifespan=lifespan,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        docs_url=None,
        redoc_url=None,
        telemetry=telemetry_config(settings),
    )
    app.state.settings = settings
    renderer = register_exception_handlers(app, settings)
    middleware.install(app, settings, renderer)
    include_routers(app, settings)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    if settings.docs_enabled:
        install_docs(app)
    return app


def __getattr__(name: str) -> Any:
    """Build `app` on first access, for `fastapi dev`/`fastapi run` (`[tool.fastapi]`).

    A module-level `app = create_app()` would read settings and configure logging on every
    import of this module; this keeps imports free of side effects.
    """
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
