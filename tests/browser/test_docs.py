"""The API docs in a real browser: Swagger UI logs in and calls the API; ReDoc renders.

Headless Debian Chromium, driven by Playwright (no browser download), against a real server
with its default Content Security Policy. Screenshots are kept in the test's directory.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    expect,
    sync_playwright,
)

from tests.identity import DEFAULT_PASSWORD, unique_email
from tests.live_server import LiveServer, live_server
from tests.services import service_unavailable

CHROMIUM = "/usr/bin/chromium"  # Debian's package: `make test` installs it when missing
TIMEOUT_MS = 30_000
ME = "#operations-users-read_me_api_v1_users_me_get"
expect.set_options(timeout=TIMEOUT_MS)
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})  # no network request behind these


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("docs-server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        service_unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        # No sandbox: CI runs as root, where Chromium refuses to start with one.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A page, and what it printed to its console and asked of the network."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.hosts: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", self._request)

    def _request(self, request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme not in LOCAL_SCHEMES:
            self.hosts.add(url.netloc)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def test_swagger_ui_logs_in_and_calls_the_api(
    server: LiveServer, watched: Watched, tmp_path: Path
) -> None:
    email = unique_email("browser")
    server.sign_up(email)
    page = watched.page
    answer = page.goto(f"{server.url}/docs")
    assert answer is not None
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    expect(page.locator(ME)).to_be_visible()

    page.locator("button.authorize").first.click()
    page.locator("#oauth_username").fill(email)
    page.locator("#oauth_password").fill(DEFAULT_PASSWORD)
    page.locator(".auth-container").filter(has=page.locator("#oauth_username")).locator(
        "button.authorize"
    ).click()
    expect(page.locator(".auth-container").get_by_text("Authorized")).to_be_visible()
    page.screenshot(path=tmp_path / "authorized.png")
    page.locator("button.btn-done").first.click()

    operation = page.locator(ME)
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text(email)
    page.screenshot(path=tmp_path / "swagger-ui.png", full_page=True)

    assert watched.errors == []
    assert watched.hosts == {urlsplit(server.url).netloc}


def test_redoc_renders(server: LiveServer, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    answer = page.goto(f"{server.url}/redoc")
    assert answer is not None
    assert "content-security-policy" in answer.headers
    try:
        expect(page.locator("h2", has_text="Read Me").first).to_be_visible()
    finally:
        page.screenshot(path=tmp_path / "redoc.png")

    assert watched.errors == []
    assert watched.hosts == {urlsplit(server.url).netloc}
