"""The circuit breaker: closed, open after consecutive failures, one probe when half-open."""

import pytest

from app.core.circuit import CircuitBreaker, State
from tests.harness import FakeClock, log_lines


def breaker(clock: FakeClock, *, threshold: int = 3, cool_down: float = 2.0) -> CircuitBreaker:
    return CircuitBreaker("test", failure_threshold=threshold, cool_down=cool_down, clock=clock)


def test_it_opens_after_consecutive_failures_only() -> None:
    circuit = breaker(FakeClock())
    circuit.failed()
    circuit.failed()
    circuit.succeeded()  # an answer in between starts the count again
    circuit.failed()
    circuit.failed()
    before = circuit.state
    assert circuit.allow()
    circuit.failed()
    assert (before, circuit.state, circuit.failures) == (State.CLOSED, State.OPEN, 5)


def test_an_open_breaker_refuses_until_the_cool_down_ends_then_lets_one_probe_by() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cool_down=2.0)
    circuit.failed()
    assert [circuit.allow() for _ in range(3)] == [False, False, False]
    assert circuit.retry_after == 2
    clock.advance(2.0)
    assert [circuit.allow() for _ in range(3)] == [True, False, False]  # one probe at a time
    assert circuit.state is State.HALF_OPEN
    assert circuit.refused == 5


def test_the_probes_answer_closes_it_and_its_failure_opens_it_again() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=2)
    circuit.failed()
    circuit.failed()
    clock.advance(2.0)
    assert circuit.allow()
    circuit.failed()  # one failure is enough while half-open
    reopened = circuit.state
    assert not circuit.allow()
    clock.advance(2.0)
    assert circuit.allow()
    circuit.succeeded()
    assert (reopened, circuit.state) == (State.OPEN, State.CLOSED)
    assert all(circuit.allow() for _ in range(5))


def test_late_answers_and_failures_while_open_change_nothing() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cool_down=5.0)
    circuit.failed()
    clock.advance(1.0)
    circuit.succeeded()  # a call admitted before it opened, answered late
    circuit.failed()  # another, failing late: the cool-down is not pushed back
    assert circuit.state is State.OPEN
    clock.advance(4.0)
    assert circuit.allow()


def test_a_probe_that_never_reports_lapses_after_a_cool_down() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cool_down=2.0)
    circuit.failed()
    clock.advance(2.0)
    assert circuit.allow()  # the probe, lost (its request was cancelled)
    clock.advance(1.0)
    assert not circuit.allow()
    clock.advance(1.0)
    assert circuit.allow()


def test_opening_and_closing_are_logged_once_each() -> None:
    clock = FakeClock()
    with log_lines() as logs:
        circuit = breaker(clock, threshold=2)
        for _ in range(10):
            circuit.failed()
        clock.advance(2.0)
        circuit.allow()
        circuit.succeeded()
    [opened] = logs.events("circuit_opened")
    assert (opened["level"], opened["circuit"], opened["failures"]) == ("warning", "test", 2)
    assert len(logs.events("circuit_half_open")) == 1
    assert len(logs.events("circuit_closed")) == 1


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (1, 0.0)])
def test_bad_options_are_refused(threshold: int, cool_down: float) -> None:
    with pytest.raises(ValueError, match=r"failure_threshold|cool_down"):
        CircuitBreaker("x", failure_threshold=threshold, cool_down=cool_down)
