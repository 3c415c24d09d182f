"""OpenAPI: links from each create to what acts on its result; security schemes; password flow."""

import re
from collections.abc import Sequence
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.security.base import SecurityBase

BEARER_SCHEME = "HTTPBearer"  # FastAPI's name for an `HTTPBearer` security scheme
PASSWORD_FLOW = "OAuth2PasswordBearer"  # noqa: S105 - a scheme name  # nosec B105

_ITEM_PATH = re.compile(r"^(?P<collection>.+)/\{(?P<parameter>[^/{}]+)\}$")


def with_links(paths: dict[str, Any]) -> None:
    """Link each create (a POST answering 201) to the operations on the resource it made.

    `POST /items` creates what `GET`, `PATCH` and `DELETE /items/{item_id}` act on, the id of
    the created resource being `id` in the 201 body: clients, and stateful fuzzers, follow it.
    """
    for path, path_item in paths.items():
        match = _ITEM_PATH.match(path)
        created = paths.get(match["collection"], {}).get("post") if match else None
        if match is None or created is None or "201" not in created.get("responses", {}):
            continue
        answer = created["responses"]["201"]
        links = answer.setdefault("links", {})
        for operation in path_item.values():
            parameters = {match["parameter"]: "$response.body#/id"}
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if "If-Match" in headers and "ETag" in answer.get("headers", {}):
                parameters["header.If-Match"] = "$response.header.ETag"
            links[operation.get("summary", operation["operationId"]).replace(" ", "")] = {
                "operationId": operation["operationId"],
                "parameters": parameters,
            }


def with_password_flow(schema: dict[str, Any], token_url: str) -> None:
    """Offer the OAuth2 password flow wherever a bearer token is accepted.

    It is the same `Authorization: Bearer` header, obtained from the login form: Swagger UI's
    "Authorize" dialog then logs in with an email and a password.
    """
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[PASSWORD_FLOW] = {
        "type": "oauth2",
        "description": "Log in with your email (`username`) and password.",
        "flows": {"password": {"tokenUrl": token_url, "scopes": {}}},
    }
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            security = operation.get("security", [])
            if any(BEARER_SCHEME in requirement for requirement in security):
                security.insert(0, {PASSWORD_FLOW: []})


def with_security(
    schema: dict[str, Any], operation: dict[str, Any], schemes: Sequence[SecurityBase]
) -> None:
    """List `schemes` as the operation's alternatives, described as FastAPI describes them."""
    described = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in schemes:
        described[scheme.scheme_name] = jsonable_encoder(
            scheme.model, by_alias=True, exclude_none=True
        )
        operation.setdefault("security", []).append({scheme.scheme_name: []})
