"""Waits between tries that double while failures repeat, and start over after a success."""

from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Exponential backoff: `first`, twice that, ... at most `cap` seconds.

    `reset` after a success: the next outage is then met with the short wait again, not with
    the long one an earlier outage grew to.
    """

    first: float = 0.5
    cap: float = 10.0
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.first

    def next_wait(self) -> float:
        """Return the wait before the next try, and double the one after it."""
        wait = self.current
        self.current = min(self.current * 2, self.cap)
        return wait

    def reset(self) -> None:
        """Start over at `first`: the thing tried works again."""
        self.current = self.first
