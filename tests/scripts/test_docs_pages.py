"""The generated documentation pages match the code they are generated from."""

import re

from scripts.docs_pages import CONFIGURATION, OPENAPI_JSON, configuration_page, pages

from app.core.config import Settings


def test_committed_pages_are_what_the_code_gives() -> None:
    for path, text in pages().items():
        if path != OPENAPI_JSON:  # written at build time, not committed
            assert path.read_text() == text, f"{path.name} is stale: run `make docs-pages`"


def test_configuration_lists_every_setting_once() -> None:
    listed = re.findall(r"^\| `([A-Z0-9_]+)` \|", configuration_page(), re.MULTILINE)
    assert sorted(listed) == sorted(Settings.env_names())
    assert CONFIGURATION.name == "configuration.md"


def test_every_operation_is_on_the_openapi_page() -> None:
    generated = pages()
    document = generated[OPENAPI_JSON]
    page = next(text for path, text in generated.items() if path.name == "openapi.md")
    for path in re.findall(r'^  "(/[^"]*)": \{', document, re.MULTILINE):
        assert f"| `{path}` |" in page
