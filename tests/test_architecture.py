"""The layers point down: each rule of docs/architecture.md, checked on every module's imports."""

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "app"
DOMAINS = ("api_keys", "auth", "health", "idempotency", "items", "jobs", "users")
# The top floor: where the service is wired together. Nothing below may import it.
WIRING = (
    "app.main",
    "app.api",
    "app.pipeline",
    "app.lifespan",
    "app.resources",
    "app.models",
    "app.shutdown",
    "app.tasks",
    "app.worker",
    "app.cli",
)
SETTINGS = ("app.core.config", "app.core.settings_groups", "app.core.settings_operations")
MAX_SOURCE_LINES = 300
MAX_TEST_LINES = 500


@dataclass(frozen=True)
class Module:
    name: str  # app.items.router
    path: Path
    tree: ast.Module

    def imports(self) -> Iterator[str]:
        """Every module this one imports from `app` (absolute imports only: relative are banned)."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                yield node.module
                yield from (f"{node.module}.{alias.name}" for alias in node.names)

    def imports_from(self, *prefixes: str) -> list[str]:
        return sorted({name for name in self.imports() if any(_within(name, p) for p in prefixes)})


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append(Module(name, path, ast.parse(path.read_text(), filename=str(path))))
    return found


MODULES = _modules()


def modules_in(*packages: str) -> list[Module]:
    return [m for m in MODULES if any(_within(m.name, f"app.{p}") for p in packages)]


def ids(modules: list[Module]) -> list[str]:
    return [module.name for module in modules]


def test_every_package_is_seen() -> None:
    names = {module.name for module in MODULES}
    for package in ("core", "db", "infra", "middleware", "observability", *DOMAINS):
        assert f"app.{package}" in names


@pytest.mark.parametrize("module", modules_in("core"), ids=ids(modules_in("core")))
def test_core_imports_nothing_above_it(module: Module) -> None:
    assert module.imports_from("app") == module.imports_from("app.core")


@pytest.mark.parametrize("module", modules_in("db"), ids=ids(modules_in("db")))
def test_db_imports_only_core(module: Module) -> None:
    assert module.imports_from("app") == module.imports_from("app.core", "app.db")


@pytest.mark.parametrize("module", modules_in("infra"), ids=ids(modules_in("infra")))
def test_infra_imports_no_domain_and_no_wiring(module: Module) -> None:
    assert module.imports_from("app") == module.imports_from("app.core", "app.db", "app.infra")


@pytest.mark.parametrize(
    "module", modules_in("observability"), ids=ids(modules_in("observability"))
)
def test_observability_sits_beside_infra(module: Module) -> None:
    allowed = ("app.core", "app.db", "app.infra", "app.observability")
    assert module.imports_from("app") == module.imports_from(*allowed)


@pytest.mark.parametrize("module", modules_in("middleware"), ids=ids(modules_in("middleware")))
def test_middleware_know_only_core_and_never_settings(module: Module) -> None:
    assert module.imports_from("app") == module.imports_from("app.core", "app.middleware")
    assert module.imports_from(*SETTINGS) == []


@pytest.mark.parametrize("module", modules_in(*DOMAINS), ids=ids(modules_in(*DOMAINS)))
def test_domains_never_import_the_wiring_or_the_middleware(module: Module) -> None:
    assert module.imports_from(*WIRING, "app.middleware") == []


@pytest.mark.parametrize("module", modules_in(*DOMAINS), ids=ids(modules_in(*DOMAINS)))
def test_no_domain_imports_another_domains_router(module: Module) -> None:
    own = module.name.split(".")[1]
    routers = [f"app.{domain}.router" for domain in DOMAINS if domain != own]
    assert module.imports_from(*routers) == []


def _reads_app_state(tree: ast.Module) -> bool:
    """Whether the code touches `app.state` or `<anything>.app.state`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "app") or (
                isinstance(owner, ast.Attribute) and owner.attr == "app"
            ):
                return True
    return False


def test_only_the_dependency_module_reads_app_state() -> None:
    readers = [module.name for module in MODULES if _reads_app_state(module.tree)]
    assert readers == ["app.deps"]


def test_the_model_registry_is_outside_the_database_layer() -> None:
    registry = next(module for module in MODULES if module.name == "app.models")
    for domain in ("api_keys", "auth", "idempotency", "items", "jobs", "users"):
        assert f"app.{domain}.models" in registry.imports_from(f"app.{domain}")


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_source_modules_stay_small() -> None:
    large = {m.name: _lines(m.path) for m in MODULES if _lines(m.path) > MAX_SOURCE_LINES}
    assert large == {}


def test_test_modules_stay_small() -> None:
    tests = sorted((ROOT / "tests").rglob("*.py"))
    large = {str(p.relative_to(ROOT)): _lines(p) for p in tests if _lines(p) > MAX_TEST_LINES}
    assert large == {}


# A Markdown file named in the project's texts, e.g. `docs/jobs.md` or `../notes/PLAN.md`.
_MARKDOWN_NAME = re.compile(r"(?<![\w:/.-])((?:\.{1,2}/)*[\w./-]*\w\.md)\b")


_PROJECT_MARKDOWN = {
    found.name
    for folder in ("bench", "deploy", "docs", "migrations", "scripts", "src", "tests")
    for found in (ROOT / folder).rglob("*.md")
}


def _cited_files_missing(path: Path) -> list[str]:
    """Markdown files `path` names that are not in the repository (or lie outside it)."""
    missing = []
    for name in _MARKDOWN_NAME.findall(path.read_text()):
        places = [path.parent / name, ROOT / name, ROOT / "docs" / name]
        inside = [p.resolve() for p in places if p.resolve().is_relative_to(ROOT)]
        # A bare name built up in code (`RESULTS / "latest.md"`) is found by its file name.
        found_by_name = "/" not in name and name in _PROJECT_MARKDOWN
        if not any(p.exists() for p in inside) and not found_by_name:
            missing.append(name)
    return missing


def test_the_project_cites_no_file_outside_itself() -> None:
    texts = [ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    texts += [ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")]
    texts += [*(ROOT / "bench").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]
    texts += [module.path for module in MODULES]
    citing = {str(p.relative_to(ROOT)): m for p in texts if (m := _cited_files_missing(p))}
    assert citing == {}
