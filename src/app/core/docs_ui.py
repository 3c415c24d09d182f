"""Offline `/docs` and `/redoc`: pinned local assets, no inline script (strict CSP)."""

import html
import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "docs"
DOCS_ASSETS_URL = "/static/docs"
DOCS_PATHS = ("/docs", "/redoc")
_JSON_IN_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


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
