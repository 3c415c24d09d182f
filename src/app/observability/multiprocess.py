"""Metrics under several workers: prometheus-client's multiprocess mode, kept tidy.

Each worker writes its values to files named after its pid in `PROMETHEUS_MULTIPROC_DIR`;
a scrape, answered by any worker, merges them. This module decides at a worker's start what
is left over (files of a previous run: removed) and what belongs to a dead sibling (its live
gauges: removed; its counters: kept, so totals never go backwards), and supplies the figures
that prometheus-client's own collectors report for one process only (CPU, memory, GC).
"""

import contextlib
import fcntl
import gc
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Metric, ProcessCollector
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.registry import Collector

# Directories whose files this process has begun to write: its own files there are current.
_OPENED: set[Path] = set()


def _pids(directory: Path) -> set[int]:
    """The pids of the processes that wrote files here (`counter_1234.db` -> 1234)."""
    pids = set()
    for file in directory.glob("*.db"):
        suffix = file.stem.rpartition("_")[2]
        if suffix.isdigit():
            pids.add(int(suffix))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive all the same
        return True
    return True


def _live_writers(directory: Path) -> set[int]:
    own = os.getpid()
    # Files under our own pid that this process did not write are a previous run's (pids
    # repeat from one container start to the next): not evidence of a live worker.
    return {pid for pid in _pids(directory) if _alive(pid) and (pid != own or directory in _OPENED)}


@contextlib.contextmanager
def prepared(directory: str) -> Iterator[None]:
    """Hold the directory's lock while it is tidied and this worker defines its metrics.

    With no live writer the files are a previous run's, and all go. Otherwise the dead
    writers' live gauges go (`mark_process_dead`) and their counters and histograms stay.
    """
    path = Path(directory).resolve()
    path.mkdir(parents=True, exist_ok=True)
    with (path / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            live = _live_writers(path)
            for pid in _pids(path) - live:
                if live:
                    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
                else:
                    for file in path.glob(f"*_{pid}.db"):
                        file.unlink(missing_ok=True)
            _OPENED.add(path)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class WorkerProcessCollector(Collector):
    """`process_*` figures of every live worker, labelled with its `pid`.

    prometheus-client's `ProcessCollector` reports the process that answers the scrape; with
    several workers that would be whichever one the scrape reached.
    """

    def __init__(self, directory: str, *, registry: CollectorRegistry) -> None:
        self.directory = Path(directory)
        registry.register(self)

    def collect(self) -> Iterable[Metric]:
        """Read `/proc` for each live worker."""
        families: dict[str, Metric] = {}
        for pid in sorted(pid for pid in _pids(self.directory) if _alive(pid)):
            reader = ProcessCollector(pid=lambda pid=pid: pid, registry=None)  # type: ignore[misc]
            for family in reader.collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return list(families.values())


class GcCounters:
    """This worker's garbage collections, added into counters every worker shares.

    The names are those of prometheus-client's `GCCollector`, which reports the answering
    process only. `update` adds what `gc.get_stats()` counted since its last call; it runs on
    a timer, not from `gc.callbacks`: a callback may fire while prometheus-client holds its
    (non-reentrant) file lock, and would wait for itself.
    """

    def __init__(self, counter: Callable[[str, str, tuple[str, ...]], Counter]) -> None:
        generation = ("generation",)
        self._counters = (
            counter("python_gc_collections_total", "Garbage collections.", generation),
            counter("python_gc_objects_collected_total", "Objects the GC freed.", generation),
            counter(
                "python_gc_objects_uncollectable_total",
                "Objects the GC could not free.",
                generation,
            ),
        )
        self._seen = [(0, 0, 0) for _ in gc.get_stats()]

    def update(self) -> None:
        """Add the collections since the last update."""
        for generation, stats in enumerate(gc.get_stats()):
            now = (stats["collections"], stats["collected"], stats["uncollectable"])
            for counter, before, after in zip(
                self._counters, self._seen[generation], now, strict=True
            ):
                if after > before:
                    counter.labels(str(generation)).inc(after - before)
            self._seen[generation] = now
