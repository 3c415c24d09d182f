"""`app verify URL`: black-box checks of a running deployment, printed as a table."""

from functools import partial
from typing import Annotated

import httpx2
import typer
from rich.table import Table

from app.cli import common
from app.cli import verify_checks as checks
from app.cli.verify_account import round_trip

BASIC_CHECKS = (
    ("health.live", checks.health),
    ("health.ready", checks.readiness),
    ("request_id.echo", checks.request_id),
    ("errors.not_found", checks.not_found),
    ("errors.validation", checks.validation_error),
    ("security_headers", checks.security_headers),
    ("rate_limit.headers", checks.rate_limit_headers),
)
# Colour names, which bandit takes for passwords (a key is "pass").
_STYLES = {"pass": "green", "fail": "bold red", "skip": "yellow"}  # nosec B105


async def run_checks(
    client: httpx2.AsyncClient, *, expect_rate_limit: bool = False, max_requests: int = 1000
) -> checks.Verifier:
    """Run every check against the service behind `client`; the quota-spending one last."""
    verifier = checks.Verifier(client)
    for name, check in BASIC_CHECKS:
        await verifier.check(name, partial(check, client))
    await round_trip(verifier)
    if expect_rate_limit:
        enforced = checks.rate_limit_enforced(max_requests)
        await verifier.check("rate_limit.enforced", partial(enforced, client))
    return verifier


def checked_url(url: str) -> httpx2.URL:
    """The service's base URL, or a usage error."""
    try:
        parsed = httpx2.URL(url.rstrip("/"))
    except httpx2.InvalidURL as error:
        common.fail(f"not a URL: {url!r} ({error})", 2)
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        common.fail(f"not an http(s) URL: {url!r}", 2)
    return parsed


async def _verify(
    url: httpx2.URL, *, timeout: float, expect_rate_limit: bool, max_requests: int
) -> checks.Verifier:
    headers = {"User-Agent": "app-verify"}
    async with httpx2.AsyncClient(
        base_url=url, timeout=httpx2.Timeout(timeout), headers=headers
    ) as client:
        return await run_checks(
            client, expect_rate_limit=expect_rate_limit, max_requests=max_requests
        )


def table(url: httpx2.URL, results: list[checks.Result]) -> Table:
    """The results as a table: check, outcome, what was seen."""
    view = Table(title=f"app verify {url}", title_justify="left")
    view.add_column("check", no_wrap=True)
    view.add_column("result", no_wrap=True)
    view.add_column("detail", overflow="fold")
    for result in results:
        style = _STYLES[result.outcome]
        view.add_row(result.name, f"[{style}]{result.outcome.upper()}[/{style}]", result.detail)
    return view


def verify(
    url: Annotated[
        str, typer.Argument(help="The service's base URL, e.g. https://api.example.com")
    ],
    expect_rate_limit: Annotated[
        bool,
        typer.Option(help="Also send requests to a limited route until 429 arrives."),
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds each request may take.")] = 10.0,
    max_requests: Annotated[
        int, typer.Option(min=1, help="Most requests --expect-rate-limit sends.")
    ] = 1000,
) -> None:
    """Check a running deployment from outside; exit 1 when any check fails.

    Health and readiness, X-Request-ID echo, problem+json on 404 and 422, security headers,
    rate-limit headers, and an account round trip (register, login, /users/me, refresh,
    logout) with a throwaway account that is deleted afterwards.
    """
    base = checked_url(url)
    verifier = common.run(
        _verify(
            base,
            timeout=timeout,
            expect_rate_limit=expect_rate_limit,
            max_requests=max_requests,
        )
    )
    common.stdout.print(table(base, verifier.results))
    if verifier.failed:
        total = len(verifier.results)
        common.fail(
            f"{len(verifier.failed)} of {total} checks failed: {', '.join(verifier.failed)}"
        )


def register(cli: typer.Typer) -> None:
    """Add `verify` to the CLI."""
    common.register(
        cli,
        verify,
        name="verify",
        examples=[
            "app verify http://127.0.0.1:8000",
            "app verify https://api.example.com --timeout 5",
            "app verify https://staging.example.com --expect-rate-limit",
        ],
    )
