"""The deployment verifier's checks: what a running service must show over plain HTTP.

Each check sends real requests through one `httpx2.AsyncClient` and raises `CheckFailed`
naming what it saw; `Verifier` records pass, fail or skip for every check, so one broken part
never hides the others. The account round trip lives in `verify_account`.
"""

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2

from app.api import API_PREFIX

Outcome = Literal["pass", "fail", "skip"]
PROBLEM_JSON = "application/problem+json"
PROBLEM_MEMBERS = ("type", "title", "status", "code", "request_id")
SECURITY_HEADERS = {
    "x-content-type-options": ("nosniff",),
    "x-frame-options": ("DENY", "SAMEORIGIN"),
    "referrer-policy": (),
    "permissions-policy": (),
    "cross-origin-opener-policy": (),
    "content-security-policy": (),
}
RATE_LIMIT_HEADERS = ("ratelimit-policy", "ratelimit", "x-ratelimit-limit", "x-ratelimit-remaining")
# A cheap route that is rate limited (the probes are not): what the verifier counts on.
LIMITED_PATH = f"{API_PREFIX}/meta"


class CheckFailed(Exception):
    """A check saw something a healthy deployment does not do."""


class CheckSkipped(Exception):
    """A check does not apply to this deployment (said why)."""


@dataclass(frozen=True)
class Result:
    """One check's name, outcome and what was seen."""

    name: str
    outcome: Outcome
    detail: str


@dataclass
class Verifier:
    """Runs checks against one client and keeps every result."""

    client: httpx2.AsyncClient
    results: list[Result] = field(default_factory=list)

    async def check(self, name: str, run: Callable[[], Awaitable[str]]) -> bool:
        """Run one check; record its result; True when it passed."""
        try:
            detail = await run()
        except CheckSkipped as skipped:
            self.results.append(Result(name, "skip", str(skipped)))
            return False
        except CheckFailed as failed:
            self.results.append(Result(name, "fail", str(failed)))
            return False
        except httpx2.HTTPError as error:
            self.results.append(Result(name, "fail", f"request failed: {describe(error)}"))
            return False
        self.results.append(Result(name, "pass", detail))
        return True

    def skip(self, name: str, reason: str) -> None:
        """Record a check that could not run."""
        self.results.append(Result(name, "skip", reason))

    @property
    def failed(self) -> list[str]:
        """The names of the checks that failed."""
        return [result.name for result in self.results if result.outcome == "fail"]


def describe(error: httpx2.HTTPError) -> str:
    """One line for a transport error: its kind, and its message when it has one."""
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def expect(condition: bool, message: str) -> None:
    """Fail the running check with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailed(message)


def expect_status(response: httpx2.Response, status: int) -> None:
    """Fail unless the response has `status`; say what came instead (a 429 says when to retry)."""
    if response.status_code == status:
        return
    seen = f"{response.request.method} {response.request.url.path} answered "
    seen += f"{response.status_code}, expected {status}"
    if response.status_code == 429:  # noqa: PLR2004
        seen += f" (rate limited; Retry-After: {response.headers.get('retry-after')})"
    raise CheckFailed(seen)


def json_body(response: httpx2.Response) -> Any:
    """The JSON body, or a failure naming the content type that came instead."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise CheckFailed(f"{response.request.url.path}: body is not JSON ({kind})") from None


def media_type(response: httpx2.Response) -> str:
    """The response's media type without parameters."""
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


async def health(client: httpx2.AsyncClient) -> str:
    """`/health` and the liveness probe answer exactly `{"status": "ok"}` as JSON."""
    for path in ("/health", f"{API_PREFIX}/health/live"):
        response = await client.get(path)
        expect_status(response, 200)
        expect(media_type(response) == "application/json", f"{path}: {media_type(response)}")
        body = json_body(response)
        expect(body == {"status": "ok"}, f"{path} answered {body!r}")
    return "/health and /health/live: 200 {status: ok}"


async def readiness(client: httpx2.AsyncClient) -> str:
    """The readiness probe answers 200 with every dependency ok."""
    response = await client.get(f"{API_PREFIX}/health/ready")
    body = json_body(response)
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict):
        raise CheckFailed(f"readiness {response.status_code} without checks: {body!r}")
    expect(response.status_code == 200, f"readiness {response.status_code}: {body!r}")  # noqa: PLR2004
    expect(body.get("status") == "ok", f"readiness status {body.get('status')!r}")
    return "200; " + ", ".join(f"{name} {state}" for name, state in sorted(checks.items()))


async def request_id(client: httpx2.AsyncClient) -> str:
    """A valid X-Request-ID comes back as sent; an invalid one is replaced."""
    sent = f"verify-{secrets.token_hex(8)}"
    response = await client.get(f"{API_PREFIX}/health/live", headers={"X-Request-ID": sent})
    echoed = response.headers.get("x-request-id")
    expect(echoed == sent, f"sent X-Request-ID {sent}, got {echoed!r}")
    invalid = "not a valid id!"
    response = await client.get(f"{API_PREFIX}/health/live", headers={"X-Request-ID": invalid})
    replaced = response.headers.get("x-request-id")
    expect(bool(replaced) and replaced != invalid, f"invalid X-Request-ID came back: {replaced!r}")
    return "echoed; an invalid one replaced"


def expect_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`, our members and the request id."""
    expect_status(response, status)
    expect(media_type(response) == PROBLEM_JSON, f"{status} as {media_type(response)!r}")
    body = json_body(response)
    expect(isinstance(body, dict), f"problem body is not an object: {body!r}")
    missing = [name for name in PROBLEM_MEMBERS if name not in body]
    expect(not missing, f"problem lacks {', '.join(missing)}")
    expect(body["status"] == status, f"problem status {body['status']!r}")
    echoed = response.headers.get("x-request-id")
    expect(body["request_id"] == echoed, "problem request_id differs from X-Request-ID")
    result: dict[str, Any] = body
    return result


async def not_found(client: httpx2.AsyncClient) -> str:
    """An unknown path answers a 404 problem."""
    response = await client.get(f"{API_PREFIX}/verify-{secrets.token_hex(6)}")
    body = expect_problem(response, 404)
    return f"404 {PROBLEM_JSON}, code {body['code']}"


async def validation_error(client: httpx2.AsyncClient) -> str:
    """A malformed registration answers a 422 problem that points at each bad field."""
    refused = {"email": "not-an-email", "password": ""}  # nosec B105 - meant to be refused
    response = await client.post(f"{API_PREFIX}/users", json=refused)
    if response.status_code in {404, 405}:
        raise CheckSkipped("no local registration (AUTH_PROVIDER=oidc?)")
    body = expect_problem(response, 422)
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors:
        raise CheckFailed("422 problem lists no errors")
    return f"422 {PROBLEM_JSON}, code {body['code']}, {len(errors)} error(s)"


async def security_headers(client: httpx2.AsyncClient) -> str:
    """API responses carry the hardening headers (and HSTS over HTTPS)."""
    response = await client.get(LIMITED_PATH)
    headers = response.headers
    wrong = [
        name
        for name, allowed in SECURITY_HEADERS.items()
        if name not in headers or (allowed and headers[name] not in allowed)
    ]
    if "no-store" not in headers.get("cache-control", ""):
        wrong.append("cache-control: no-store")
    if client.base_url.scheme == "https" and "strict-transport-security" not in headers:
        wrong.append("strict-transport-security")
    expect(not wrong, "missing or wrong: " + ", ".join(wrong))
    return f"{len(SECURITY_HEADERS) + 1} headers present"


async def rate_limit_headers(client: httpx2.AsyncClient) -> str:
    """A rate-limited route says its quota (IETF RateLimit and X-RateLimit-* headers)."""
    response = await client.get(LIMITED_PATH)
    missing = [name for name in RATE_LIMIT_HEADERS if name not in response.headers]
    expect(not missing, f"{LIMITED_PATH} lacks {', '.join(missing)}")
    return f"RateLimit-Policy: {response.headers['ratelimit-policy']}"


def rate_limit_enforced(max_requests: int) -> Callable[[httpx2.AsyncClient], Awaitable[str]]:
    """A check that sends up to `max_requests` to a limited route until a 429 problem comes."""

    async def enforced(client: httpx2.AsyncClient) -> str:
        for sent in range(1, max_requests + 1):
            response = await client.get(LIMITED_PATH)
            if response.status_code == 429:  # noqa: PLR2004
                body = expect_problem(response, 429)
                expect("retry-after" in response.headers, "429 without Retry-After")
                return f"429 after {sent} requests, code {body['code']}"
            expect_status(response, 200)
        raise CheckFailed(f"no 429 after {max_requests} requests to {LIMITED_PATH}")

    return enforced
