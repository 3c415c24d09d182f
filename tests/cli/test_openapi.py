"""`app openapi`: the document, stable, to stdout or a file; the committed artifact is current."""

import json
from pathlib import Path

import pytest

from app.cli.openapi import default_settings, render
from tests.cli.conftest import Run
from tests.migrations import ALEMBIC_INI

ARTIFACT = ALEMBIC_INI.parent / "openapi.json"


def test_stdout_is_the_apps_document(run_cli: Run) -> None:
    outcome = run_cli("openapi")
    assert outcome.code == 0, outcome.err
    document = json.loads(outcome.out)
    assert "/api/v1/users/me" in document["paths"]
    assert outcome.out.endswith("}\n")
    assert list(document) == sorted(document)


def test_output_writes_the_same_text_every_time(run_cli: Run, cli_env: Path) -> None:
    target = cli_env / "out" / "openapi.json"
    target.parent.mkdir()
    assert run_cli("openapi", "--output", str(target)).code == 0
    first = target.read_text()
    assert run_cli("openapi", "-o", str(target)).code == 0
    assert target.read_text() == first
    assert first == run_cli("openapi").out


def test_the_settings_shape_the_document(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_PROVIDER", "oidc")
    monkeypatch.setenv("OIDC_ISSUER", "https://id.example.com")
    monkeypatch.setenv("OIDC_AUDIENCE", "api")
    monkeypatch.setenv("OIDC_JWKS_URL", "https://id.example.com/jwks")
    paths = json.loads(run_cli("openapi").out)["paths"]
    assert "/api/v1/auth/login" not in paths
    defaults = json.loads(run_cli("openapi", "--defaults").out)["paths"]
    assert "/api/v1/auth/login" in defaults


def test_defaults_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_NAME", "Something Else")
    assert default_settings().app.name == "Production FastAPI Backend"


def test_the_committed_openapi_json_is_current() -> None:
    produced = render(default_settings())
    committed = ARTIFACT.read_text() if ARTIFACT.exists() else ""
    assert committed == produced, (
        "openapi.json differs from what the app produces: run `make openapi` and commit it"
    )
