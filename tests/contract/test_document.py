"""Rules every operation of the OpenAPI document follows, checked over the whole document."""

import re
from typing import Any

import pytest

from app.core.problems import PROBLEM_MEDIA_TYPE
from app.main import create_app
from tests.harness import make_settings

DOCUMENT: dict[str, Any] = create_app(make_settings(RATE_LIMIT_ENABLED=True)).openapi()
OPERATIONS = [
    (method, path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]
IDS = [f"{method.upper()} {path}" for method, path, _ in OPERATIONS]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].rsplit("/", 1)[-1] if "$ref" in schema else None
    return DOCUMENT["components"]["schemas"][name] if name else schema


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_documents_the_pipeline_errors(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    expected = {"400", "413", "422", "500", "503"} | (
        {"415"} if method in ("post", "put", "patch") else set()
    )
    if method in ("post", "put", "patch", "delete"):  # a write that lost a race
        expected.add("409")
    assert expected <= responses.keys()
    for status, response in responses.items():
        if status >= "400" and not (path.endswith("/ready") and status == "503"):
            assert PROBLEM_MEDIA_TYPE in response["content"], status
        if status in ("204", "304"):
            assert "content" not in response, status
        if status == "201":
            assert response["headers"]["Location"]["required"] is True
    if path.startswith("/api/v1/") and "/health/" not in path:
        assert "429" in responses
        assert "Retry-After" in responses["429"]["headers"]


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_request_body_refuses_unknown_fields(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
        schema = _resolve(content["schema"])
        if media_type == "application/x-www-form-urlencoded":
            continue  # the OAuth2 password form: standard fields, others are ignored by the spec
        assert schema.get("additionalProperties") is False, f"{method} {path} {media_type}"


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_page_documents_its_link_to_the_next(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    ok = operation["responses"].get("200", {})
    schema = ok.get("content", {}).get("application/json", {}).get("schema", {})
    if "next_cursor" in _resolve(schema).get("properties", {}):
        assert "Link" in ok["headers"]


def test_head_is_answered_but_not_listed() -> None:
    assert not any(method == "head" for method, _, _ in OPERATIONS)


def test_swagger_ui_can_log_in_with_the_password_form() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_401_documents_its_challenge(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    # Every 401 is an UnauthorizedError, which always sends WWW-Authenticate.
    unauthorized = operation["responses"].get("401")
    if unauthorized is not None:
        assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True


IDEMPOTENT = [
    (method, path, operation)
    for method, path, operation in OPERATIONS
    if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
]


@pytest.mark.parametrize(
    ("method", "path", "operation"), IDEMPOTENT, ids=[f"{m.upper()} {p}" for m, p, _ in IDEMPOTENT]
)
def test_idempotent_operations_document_replays_and_keys_in_progress(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    success = next(status for status in responses if status.startswith("2"))
    assert "Idempotent-Replayed" in responses[success]["headers"]
    assert "Retry-After" in responses["409"]["headers"]
    assert {"400", "409", "422"} <= responses.keys()


def test_some_operation_takes_an_idempotency_key() -> None:
    assert [f"{m.upper()} {p}" for m, p, _ in IDEMPOTENT] == ["POST /api/v1/items"]


OIDC = {
    "AUTH_PROVIDER": "oidc",
    "OIDC_ISSUER": "https://idp.example.com/",
    "OIDC_AUDIENCE": "api",
    "OIDC_JWKS_URL": "https://idp.example.com/jwks",
}


@pytest.mark.parametrize("provider", [{}, OIDC], ids=["local", "oidc"])
def test_descriptions_name_only_paths_the_document_has(provider: dict[str, str]) -> None:
    """Text naming a route mounted in one mode only (the login) must not reach the other."""
    settings = make_settings(DATABASE_URL="sqlite+aiosqlite:///:memory:", **provider)
    document = create_app(settings).openapi()
    prefix = document.get("servers", [{}])[0].get("url", "")
    paths = {path.removeprefix(prefix) for path in document["paths"]}
    paths |= {path.removeprefix("/api/v1") for path in paths}
    texts = [
        scheme.get("description", "")
        for scheme in document["components"]["securitySchemes"].values()
    ]
    texts += [
        operation.get("description", "")
        for path_item in document["paths"].values()
        for operation in path_item.values()
    ]
    texts += [
        schema.get("description", "") for schema in document["components"]["schemas"].values()
    ]
    named = {path for text in texts for path in re.findall(r"(?<![\w.])(/[a-z][\w\-/{}]*)", text)}
    assert named <= paths, named - paths
