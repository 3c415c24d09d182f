"""Every `app ...` command line in the Dockerfile, compose.yaml and the manifests is one the
CLI accepts: a renamed command or option fails here, not in a crash-looping container."""

import re
import shlex
from typing import Any

import pytest
import typer
import yaml

from app.cli import cli
from tests.deploy.manifests import ROOT, dockerfile_stages, render_kustomization

# `${WEB_CONCURRENCY}`, `${NAME:-default}` (shell, compose) and `$(NAME)` (Kubernetes).
VARIABLE = re.compile(r"\$\{\w+(?::?-[^}]*)?\}|\$\(\w+\)")
GROUP = typer.main.get_group(cli)


def _command_lines() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for name, stage in dockerfile_stages(ROOT / "Dockerfile").items():
        for cmd in stage.all("CMD"):
            words = yaml.safe_load(cmd)
            script = shlex.split(words[2]) if words[:2] == ["sh", "-c"] else words
            found.append((f"Dockerfile {name}", script))
    services: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name, service in services.items():
        if isinstance(service.get("command"), list):
            found.append((f"compose {name}", service["command"]))
    k8s = ROOT / "deploy" / "k8s" / "overlays" / "production"
    for doc in render_kustomization(k8s):
        template = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []):
            words = [*container.get("command", []), *container.get("args", [])]
            found.append((f"{doc['kind']} {doc['metadata']['name']}", words))
    return [(where, words) for where, words in found if "app" in words]


LINES = _command_lines()


def test_the_deployments_start_every_process_through_the_cli() -> None:
    commands = {words[words.index("app") + 1] for _, words in LINES}
    assert {"serve", "migrate", "worker", "scheduler"} <= commands


@pytest.mark.parametrize(("where", "words"), LINES, ids=[where for where, _ in LINES])
def test_each_command_line_parses(where: str, words: list[str]) -> None:
    args = [VARIABLE.sub("2", word) for word in words[words.index("app") + 1 :]]
    group_context = GROUP.make_context("app", list(args), resilient_parsing=True)
    name, sub, rest = GROUP.resolve_command(group_context, args)
    assert sub is not None, where
    sub.make_context(f"app {name}", rest)  # raises on an unknown option or a bad value
