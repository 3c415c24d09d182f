"""The back-off shared by the optional backends: rest after a failure, log now and then."""

import pytest

from app.core.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_rests_the_backend_for_the_interval() -> None:
    clock = Clock()
    backoff = Backoff(2.0, clock=clock)
    assert not backoff.resting()
    backoff.failed()
    assert backoff.resting()
    clock.now += 1.9
    assert backoff.resting()
    clock.now += 0.1
    assert not backoff.resting()


def test_failures_are_counted_but_logged_at_most_once_per_warning_interval() -> None:
    clock = Clock()
    backoff = Backoff(0, warning_interval=5.0, clock=clock)
    assert [backoff.failed() for _ in range(3)] == [True, False, False]
    clock.now += 5.0
    assert backoff.failed() is True
    assert backoff.failures == 4


def test_a_zero_interval_never_rests() -> None:
    backoff = Backoff(0)
    backoff.failed()
    assert not backoff.resting()


@pytest.mark.parametrize(("interval", "warning_interval"), [(-1, 5), (1, -1)])
def test_negative_intervals_are_refused(interval: float, warning_interval: float) -> None:
    with pytest.raises(ValueError, match="zero or more seconds"):
        Backoff(interval, warning_interval=warning_interval)
