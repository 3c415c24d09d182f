"""`app openapi`: the document, stable, to stdout or a file; the committed artifact is current."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from app.api import operation_id
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


def test_the_document_is_the_same_whatever_the_hash_seed() -> None:
    """Nothing in it may follow the order of a set: string hashing changes it per process."""
    for seed in ("1", "2"):  # and this process's own, random, in the test above
        produced = subprocess.run(
            [sys.executable, "-m", "app.cli", "openapi", "--defaults"],
            env=os.environ | {"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert produced.stdout == ARTIFACT.read_text(), f"PYTHONHASHSEED={seed}"


def test_an_operation_id_names_the_documented_method_in_any_order() -> None:
    async def read_thing() -> None: ...

    route = APIRoute("/things/{thing_id}", read_thing, methods=["GET"])
    found = set()
    for order in (["GET", "HEAD"], ["HEAD", "GET"]):
        route.methods = order  # type: ignore[assignment]  # a set, iterated in either order
        found.add(operation_id(route))
    assert found == {"read_thing_things__thing_id__get"}
