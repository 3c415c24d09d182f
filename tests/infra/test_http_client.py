"""The outbound client against a real upstream on loopback that fails on purpose.

Hits are counted by the server, so a retry the client did not make, or a call an open breaker
refused, shows there whatever the client reports.
"""

import asyncio
import time
from collections.abc import Iterator

import httpx2
import pytest

from app.core.circuit import State
from app.core.logging import bind_request_context
from app.core.upstream import CircuitOpenError
from app.infra.http import (
    IDEMPOTENT_METHODS,
    HostBreakers,
    create_http_client,
    retry_after_seconds,
)
from tests.harness import FakeClock, make_settings
from tests.upstream import Outcome, Upstream, resilient_client, upstream

pytestmark = pytest.mark.anyio

UNAVAILABLE = Outcome(status=503)
DROP = Outcome(drop=True)


@pytest.fixture
def server() -> Iterator[Upstream]:
    with upstream() as running:
        yield running


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(IDEMPOTENT_METHODS))
@pytest.mark.parametrize("status", [502, 503, 504])
async def test_idempotent_methods_are_retried_on_unavailable_answers(
    server: Upstream, method: str, status: int
) -> None:
    server.answer(Outcome(status=status), Outcome(status=status))
    async with resilient_client(retries=2) as client:
        response = await client.request(method, server.url)
    assert response.status_code == 200
    assert server.hits == 3


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("failure", [UNAVAILABLE, DROP])
async def test_post_and_patch_are_never_retried(
    server: Upstream, method: str, failure: Outcome
) -> None:
    server.answer(otherwise=failure)
    async with resilient_client(retries=3) as client:
        if failure.drop:
            with pytest.raises(httpx2.RemoteProtocolError):
                await client.request(method, server.url, json={"a": 1})
        else:
            response = await client.request(method, server.url, json={"a": 1})
            assert response.status_code == 503
    assert server.hits == 1


@pytest.mark.parametrize("status", [400, 404, 429, 500, 501])
async def test_other_error_answers_are_not_retried(server: Upstream, status: int) -> None:
    server.answer(otherwise=Outcome(status=status))
    async with resilient_client(retries=3) as client:
        assert (await client.get(server.url)).status_code == status
    assert server.hits == 1


async def test_a_dropped_connection_is_retried_then_raised(server: Upstream) -> None:
    server.answer(otherwise=DROP)
    async with resilient_client(retries=2) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.get(server.url)
    assert server.hits == 3


async def test_a_refused_connection_is_retried_then_raised() -> None:
    with upstream() as gone:
        url = gone.url  # nothing listens there once it is closed
    async with resilient_client(retries=2) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(url)


async def test_out_of_tries_the_caller_reads_the_last_answer(server: Upstream) -> None:
    server.answer(otherwise=UNAVAILABLE)
    async with resilient_client(retries=2) as client:
        response = await client.get(server.url)
    assert (response.status_code, response.json()) == (503, {})
    assert server.hits == 3


async def test_a_read_timeout_is_enforced_and_not_retried(server: Upstream) -> None:
    server.answer(otherwise=Outcome(delay=5.0))
    async with resilient_client(retries=3, read_timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(server.url)
    assert time.monotonic() - started < 2.0
    assert server.hits == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("drip_body", [False, True], ids=["head", "body"])
async def test_an_answer_a_byte_at_a_time_is_cut_off_at_the_total_timeout(
    server: Upstream, method: str, drip_body: bool
) -> None:
    # Each byte comes long before the read timeout: only the call's own deadline ends it.
    server.answer(otherwise=Outcome(drip=0.05, drip_body=drip_body))
    async with resilient_client(retries=2, read_timeout=1.0, total_timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout):
            await client.request(method, server.url)
        breaker = client._transport.breakers.for_url(httpx2.URL(server.url))  # type: ignore[attr-defined]
    assert time.monotonic() - started < 3.0  # the answer would take 50 s
    assert server.hits == 1  # a read timeout is not retried
    assert breaker.failures == 1  # the host did not serve the call


async def test_the_total_timeout_leaves_a_timely_answer_and_others_timeouts_alone(
    server: Upstream,
) -> None:
    server.answer(Outcome(drip=0.001, drip_body=True), otherwise=Outcome(delay=5.0))
    async with resilient_client(read_timeout=0.2, total_timeout=3.0) as client:
        response = await client.get(server.url)
        assert len(response.content) == 1024
        with pytest.raises(httpx2.ReadTimeout):  # the read timeout, well before the deadline
            await client.get(server.url)
        with pytest.raises(TimeoutError):  # the caller's own bound stays its own
            async with asyncio.timeout(0.1):
                await client.get(server.url)


async def test_backoff_grows_and_is_bounded(server: Upstream) -> None:
    server.answer(otherwise=UNAVAILABLE)
    async with resilient_client(
        retries=4, wait_initial=0.05, wait_max=0.1, wait_jitter=0.0
    ) as client:
        started = time.monotonic()
        await client.get(server.url)
        elapsed = time.monotonic() - started
    # Waits of 0.05, 0.1, 0.1, 0.1: capped at wait_max, never skipped.
    assert 0.35 <= elapsed < 2.0
    assert server.hits == 5


async def test_retry_after_within_the_cap_is_waited_for(server: Upstream) -> None:
    server.answer(Outcome(status=503, headers={"Retry-After": "1"}))
    async with resilient_client(retries=1) as client:
        started = time.monotonic()
        response = await client.get(server.url)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.9
    assert server.hits == 2


async def test_retry_after_past_the_cap_ends_the_retries(server: Upstream) -> None:
    server.answer(otherwise=Outcome(status=503, headers={"Retry-After": "120"}))
    async with resilient_client(retries=3) as client:
        response = await client.get(server.url)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "120")
    assert server.hits == 1


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


# --- the circuit breaker -------------------------------------------------------------------------


async def open_breaker(client: httpx2.AsyncClient, server: Upstream, failures: int) -> None:
    server.answer(otherwise=UNAVAILABLE)
    for _ in range(failures):
        assert (await client.get(server.url)).status_code == 503


async def test_the_breaker_opens_after_the_threshold_and_rejects_without_calling(
    server: Upstream,
) -> None:
    async with resilient_client(retries=0, threshold=3, reset=30) as client:
        await open_breaker(client, server, 3)
        started = time.monotonic()
        with pytest.raises(CircuitOpenError) as refused:
            await client.get(server.url)
        assert time.monotonic() - started < 0.1
    assert isinstance(refused.value, httpx2.TransportError)  # `except httpx2.HTTPError` holds
    assert refused.value.retry_after == 30
    assert server.hits == 3


async def test_retries_stop_once_the_breaker_opens(server: Upstream) -> None:
    server.answer(otherwise=DROP)
    async with resilient_client(retries=5, threshold=2) as client:
        with pytest.raises(CircuitOpenError):
            await client.get(server.url)
    assert server.hits == 2


async def test_after_the_reset_one_probe_closes_it(server: Upstream) -> None:
    clock = FakeClock()
    async with resilient_client(retries=0, threshold=2, reset=10, clock=clock) as client:
        await open_breaker(client, server, 2)
        clock.advance(10)
        server.answer(otherwise=Outcome(status=200))
        assert (await client.get(server.url)).status_code == 200
        assert [(await client.get(server.url)).status_code for _ in range(3)] == [200] * 3
    assert server.hits == 2 + 1 + 3


async def test_a_failed_probe_opens_it_again(server: Upstream) -> None:
    clock = FakeClock()
    async with resilient_client(retries=0, threshold=2, reset=10, clock=clock) as client:
        await open_breaker(client, server, 2)
        clock.advance(10)
        assert (await client.get(server.url)).status_code == 503  # the probe
        with pytest.raises(CircuitOpenError) as refused:
            await client.get(server.url)
    assert refused.value.retry_after == 10
    assert server.hits == 3


async def test_half_open_lets_exactly_one_probe_through(server: Upstream) -> None:
    clock = FakeClock()
    async with resilient_client(retries=0, threshold=1, reset=10, clock=clock) as client:
        await open_breaker(client, server, 1)
        clock.advance(10)
        server.answer(otherwise=Outcome(delay=0.3))
        results = await asyncio.gather(
            *(client.get(server.url) for _ in range(6)), return_exceptions=True
        )
    probes = [r for r in results if isinstance(r, httpx2.Response)]
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert (len(probes), len(refused)) == (1, 5)
    assert server.hits == 2


async def test_each_host_has_its_own_breaker(server: Upstream) -> None:
    with upstream() as healthy:
        async with resilient_client(retries=0, threshold=1) as client:
            await open_breaker(client, server, 1)
            with pytest.raises(CircuitOpenError):
                await client.get(server.url)
            assert (await client.get(healthy.url)).status_code == 200
        assert healthy.hits == 1


async def test_timeouts_and_dropped_connections_count_as_failures(server: Upstream) -> None:
    server.answer(DROP, Outcome(delay=5.0))
    async with resilient_client(retries=0, threshold=2, read_timeout=0.2) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.get(server.url)
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(server.url)
        with pytest.raises(CircuitOpenError):
            await client.get(server.url)
        breaker = client._transport.breakers.for_url(httpx2.URL(server.url))  # type: ignore[attr-defined]
    assert breaker.state is State.OPEN


# --- request id and settings ---------------------------------------------------------------------


async def test_the_request_id_is_sent_upstream(server: Upstream) -> None:
    async with resilient_client() as client:
        bind_request_context(request_id="req-42")
        try:
            await client.get(server.url)
            await client.get(server.url, headers={"X-Request-ID": "chosen"})
        finally:
            bind_request_context()
        await client.get(server.url)
    sent = [headers.get("X-Request-ID") for _, headers in server.received]
    assert sent == ["req-42", "chosen", None]


async def test_the_client_takes_its_timeouts_and_retries_from_settings(server: Upstream) -> None:
    settings = make_settings(
        HTTP_CONNECT_TIMEOUT=1.5,
        HTTP_READ_TIMEOUT=0.2,
        HTTP_WRITE_TIMEOUT=3,
        HTTP_POOL_TIMEOUT=4,
        HTTP_TOTAL_TIMEOUT=20,
        HTTP_RETRIES=1,
        CIRCUIT_BREAKER_FAILURE_THRESHOLD=7,
        CIRCUIT_BREAKER_RESET_SECONDS=9,
    ).outbound
    async with create_http_client(settings, user_agent="svc/1") as client:
        timeout = client.timeout
        assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (1.5, 0.2, 3, 4)
        assert client._transport.total_timeout == 20  # type: ignore[attr-defined]
        server.answer(UNAVAILABLE, Outcome(delay=5.0))
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(server.url)
        breaker = client._transport.breakers.for_url(httpx2.URL(server.url))  # type: ignore[attr-defined]
    assert (breaker.failure_threshold, breaker.cool_down) == (7, 9)
    assert server.hits == 2  # one retry
    assert server.received[0][1]["User-Agent"] == "svc/1"


def test_breakers_are_kept_for_a_bounded_number_of_hosts() -> None:
    breakers = HostBreakers(failure_threshold=1, reset_seconds=10, max_hosts=2)
    resting = breakers.for_url(httpx2.URL("http://a.test/x"))
    resting.failed()
    breakers.for_url(httpx2.URL("http://b.test/"))
    breakers.for_url(httpx2.URL("http://c.test/"))  # makes room: b goes, the open a stays
    assert breakers.for_url(httpx2.URL("http://a.test/y?token=t")) is resting
    assert resting.name == "http://a.test:80"  # no path, query or credentials
    assert breakers.for_url(httpx2.URL("https://[::1]/")).name == "https://[::1]:443"
