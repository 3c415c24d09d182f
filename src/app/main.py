"""The application factory: the single place where the service is wired together."""

import functools
import re
from collections.abc import Callable, Collection, Sequence
from importlib.metadata import version
from typing import Any, TypeAlias, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import compile_path

from app.api import LOGIN_PATH, ROUTE_PATHS, include_routers
from app.auth.deps import authenticates, checks_scopes, security_schemes
from app.core.config import Settings, get_settings
from app.core.docs_ui import install_docs
from app.core.logging import configure_logging
from app.core.openapi import build_openapi
from app.core.problems import ProblemRenderer, register_exception_handlers
from app.deps import attach_resources
from app.lifespan import lifespan
from app.middleware.content_validation import METHODS_WITH_CONTENT
from app.observability.tracing import FASTAPI_TELEMETRY_OFF
from app.pipeline import install_middleware
from app.resources import build_resources
from app.tasks import bind as bind_jobs

DISTRIBUTION = "production-fastapi-backend"
JSON = "application/json"  # FastAPI's media type for a body that does not name one
T = TypeVar("T")
# What is known of one operation: its method, its path's pattern, and the value.
Operation: TypeAlias = tuple[str, re.Pattern[str], T]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI application; nothing connects until its lifespan starts."""
    settings = settings or get_settings()
    configure_logging(settings.logging, sql_echo=settings.database.echo)
    app_version = version(DISTRIBUTION)
    # Built here, not in the lifespan: the middleware stack is assembled before the lifespan
    # runs, and the rate limiter needs its storage then. Nothing connects until first use.
    resources = build_resources(settings, version=app_version)
    app = FastAPI(
        title=settings.app.name,
        version=app_version,
        lifespan=lifespan,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY_OFF,
        # A path is served as documented and no other way. Starlette's default answers a
        # trailing slash with an undocumented 307 whose Location is built from the Host header
        # and the scheme the server saw: a redirect a client can point at another host, or
        # from https to http behind a proxy. It is a 404 problem like any unknown path.
        redirect_slashes=False,
    )
    attach_resources(app, resources)
    bind_jobs(resources)
    renderer = ProblemRenderer(
        settings.api.problem_type_base_url,
        expose_exceptions=settings.app.debug,
        on_problem=resources.events.problem,
    )
    register_exception_handlers(app, renderer)
    install_middleware(
        app,
        settings,
        renderer=renderer,
        rate_limit_storage=resources.rate_limit_storage,
        paths=ROUTE_PATHS,
        http_metrics=resources.http_metrics,
        events=resources.events,
        tracer_provider=resources.tracer_provider,
        lifecycle=resources.lifecycle,
        country_of=resources.geoip.country if resources.geoip else None,
        token_subject=resources.access_tokens.subject,
        body_media_types=_body_media_types(app),
        single_value_parameters=_single_value_parameters(app),
    )
    include_routers(app, settings)
    app.openapi = lambda: build_openapi(  # type: ignore[method-assign]
        app,
        rate_limited=functools.partial(_rate_limited, settings),
        # Checks the caller's scopes: it may answer 403.
        scoped=_operations(app, checks_scopes),
        authenticated=_operations(app, authenticates),
        security_schemes=security_schemes(settings.auth.provider),
        country_blocked=functools.partial(_country_blocked, settings),
        password_token_url=LOGIN_PATH if settings.auth.provider == "local" else None,
        upstream_identity=settings.auth.provider == "oidc",
    )
    if settings.docs_enabled:
        install_docs(app)
    return app


def _operations(
    app: FastAPI, depends_on: Callable[[Dependant], bool]
) -> Callable[[str, str], bool]:
    """Whether operation (path, method) has a dependency tree `depends_on` says yes to."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and depends_on(context.dependant):
            path = context.path_format or route.path_format
            found.update((path, method.lower()) for method in context.methods or ())
    return lambda path, method: (path, method) in found


def _body_media_types(app: FastAPI) -> Callable[[str, str], frozenset[str] | None]:
    """The media types operation (method, path) documents for its body; None: not known here.

    Read from the routes as FastAPI documents them (the body's media type, and those a route
    adds in `openapi_extra`), on the first request with a body: the routes are included after
    the middleware are installed. A POST, PUT or PATCH that documents no body accepts none
    (an empty set): a body sent there would be ignored while its operation ran.
    """

    @functools.cache
    def operations() -> tuple[Operation[frozenset[str]], ...]:
        found: list[Operation[frozenset[str]]] = []
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if not isinstance(route, APIRoute):
                continue
            methods: Collection[str] = context.methods or ()
            types: frozenset[str] = frozenset()
            if route.body_field is None:
                methods = [method for method in methods if method in METHODS_WITH_CONTENT]
            else:
                extra = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
                types = frozenset(
                    {getattr(route.body_field.field_info, "media_type", JSON), *extra}
                )
            pattern, _, _ = compile_path(context.path_format or route.path_format)
            found += [(method, pattern, types) for method in methods]
        return tuple(found)

    return _per_operation(operations, None)


def _single_value_parameters(app: FastAPI) -> Callable[[str, str], frozenset[str]]:
    """The query parameters operation (method, path) documents as taking one value.

    Read from the OpenAPI document, the contract clients follow, on the first request that
    repeats a parameter.
    """

    @functools.cache
    def operations() -> tuple[Operation[frozenset[str]], ...]:
        found: list[Operation[frozenset[str]]] = []
        for path, item in app.openapi()["paths"].items():
            pattern, _, _ = compile_path(path)
            for method, operation in item.items():
                names = frozenset(
                    parameter["name"]
                    for parameter in operation.get("parameters", ())
                    if parameter["in"] == "query" and not _takes_many(parameter["schema"])
                )
                found.append((method.upper(), pattern, names))
        return tuple(found)

    return _per_operation(operations, frozenset())


def _takes_many(schema: dict[str, Any]) -> bool:
    alternatives = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    return schema.get("type") == "array" or any(_takes_many(one) for one in alternatives)


def _per_operation(
    operations: Callable[[], Sequence[Operation[T]]], default: T
) -> Callable[[str, str], T]:
    """Look up the value of the operation (method, path) matches, else `default`."""

    def lookup(method: str, path: str) -> T:
        for known, pattern, value in operations():
            if known == method and pattern.match(path):
                return value
        return default

    return lookup


def _country_blocked(settings: Settings, path: str) -> bool:
    """Whether country blocking may refuse `path`: a file, a rule that refuses, not a probe."""
    geoip = settings.geoip
    refuses = geoip.allowed_countries or geoip.blocked_countries or geoip.unknown == "block"
    probe = path in ROUTE_PATHS.probes or path.startswith(
        tuple(probe.rstrip("/") + "/" for probe in ROUTE_PATHS.probes)
    )
    return geoip.database_path is not None and bool(refuses) and not probe


def _rate_limited(settings: Settings, path: str) -> bool:
    """Whether the rate limiter counts requests to `path` (its prefixes, as the pipeline's)."""
    return (
        settings.rate_limit.enabled
        and path.startswith(ROUTE_PATHS.api_roots)
        and not path.startswith(ROUTE_PATHS.unlimited)
    )


@functools.cache
def _module_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> Any:
    """Build `app` on first access, once, for `fastapi dev`/`fastapi run` (`[tool.fastapi]`).

    A module-level `app = create_app()` would read settings and configure logging on every
    import of this module; this keeps imports free of side effects.
    """
    if name == "app":
        return _module_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
