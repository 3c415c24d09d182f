"""OpenAPI: problem schemas on every operation, and offline `/docs` and `/redoc`."""

import html
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, swagger_ui_default_parameters
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from app.core.problems import PROBLEM_MEDIA_TYPE

DOCS_ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "docs"
DOCS_ASSETS_URL = "/static/docs"
DOCS_PATHS = ("/docs", "/redoc")
_JSON_IN_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


class Problem(BaseModel):
    """An RFC 9457 problem details object, as every error response carries."""

    type: str = Field(examples=["https://errors.example.invalid/not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["Item 7f3c was not found."])
    instance: str = Field(examples=["/api/v1/items/7f3c"])
    code: str = Field(examples=["not_found"])
    request_id: str | None = Field(examples=["b9e1c2d4-0c0e-4d5a-9a53-1f6f7f9d0c11"])


class ValidationIssue(BaseModel):
    """One invalid input: `pointer` for body fields, else `parameter`, `header` or `cookie`."""

    detail: str
    pointer: str | None = Field(default=None, examples=["#/email"])
    parameter: str | None = Field(default=None, examples=["limit"])
    header: str | None = None
    cookie: str | None = None


class ValidationProblem(Problem):
    """A 422 problem listing every invalid input."""

    errors: list[ValidationIssue]


def problem_content(schema_name: str = "Problem") -> dict[str, Any]:
    """Return an OpenAPI `content` entry for a problem response."""
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def problem_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """Document problem responses on a route: `responses=problem_responses(404, 409)`."""
    return {code: {"description": "Problem", "content": problem_content()} for code in status_codes}


def _problem_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Problem, ValidationIssue, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _with_problem_responses(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if "422" in responses:
        responses["422"] = {
            "description": "Validation Error",
            "content": problem_content("ValidationProblem"),
        }
    responses.setdefault(
        "500", {"description": "Internal Server Error", "content": problem_content()}
    )


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Return the schema with FastAPI's validation error shapes replaced by our problems."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            _with_problem_responses(operation)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components.update(_problem_schemas())
    app.openapi_schema = schema
    return schema


def swagger_ui_html(*, title: str, openapi_url: str, assets_url: str) -> HTMLResponse:
    """Return the Swagger UI page: its config is inert JSON, `swagger-init.js` starts it.

    No inline script, so the page works under a CSP with `script-src 'self'`.
    """
    config = {**swagger_ui_default_parameters, "url": openapi_url, "validatorUrl": None}
    # Escaped like FastAPI's own page, so the JSON cannot close its <script> element.
    config_json = json.dumps(config).translate(_JSON_IN_HTML)
    return HTMLResponse(
        f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{html.escape(assets_url)}/swagger-ui.css">
<link rel="icon" href="{html.escape(assets_url)}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script type="application/json" id="swagger-config">{config_json}</script>
<script src="{html.escape(assets_url)}/swagger-ui-bundle.js"></script>
<script src="{html.escape(assets_url)}/swagger-init.js"></script>
</body>
</html>
"""
    )


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI and ReDoc from pinned local copies: no request leaves the machine.

    Neither page has an inline script, so both work under the strict docs CSP.
    """
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    swagger_path, redoc_path = DOCS_PATHS

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return swagger_ui_html(
            title=f"{app.title} - Swagger UI",
            openapi_url=root + openapi_url,
            assets_url=root + DOCS_ASSETS_URL,
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        # ReDoc's standalone bundle starts itself from the <redoc spec-url> element.
        return get_redoc_html(
            openapi_url=html.escape(root + openapi_url),
            title=html.escape(f"{app.title} - ReDoc"),
            redoc_js_url=html.escape(f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js"),
            redoc_favicon_url=html.escape(f"{root}{DOCS_ASSETS_URL}/favicon.png"),
            with_google_fonts=False,
        )

    app.add_route(swagger_path, swagger_ui, include_in_schema=False)
    app.add_route(redoc_path, redoc, include_in_schema=False)
