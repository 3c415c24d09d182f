"""Multiprocess mode's housekeeping: leftovers, dead siblings, per-worker process figures."""

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from app.observability import multiprocess
from app.observability.metrics import MultiprocDirMismatch, create_metrics
from tests.harness import make_settings


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process that stays alive for the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"")


def files(directory: Path) -> set[str]:
    return {path.name for path in directory.glob("*.db")}


def test_a_previous_runs_files_are_all_removed(tmp_path: Path, dead_pid: int) -> None:
    own = os.getpid()  # pids repeat across container starts: ours may be a dead run's
    touch(tmp_path, f"counter_{dead_pid}.db", f"gauge_livesum_{dead_pid}.db", f"counter_{own}.db")
    with multiprocess.prepared(str(tmp_path)):
        assert files(tmp_path) == set()


def test_a_dead_siblings_counters_stay_and_its_live_gauges_go(
    tmp_path: Path, live_pid: int, dead_pid: int
) -> None:
    touch(
        tmp_path,
        f"counter_{live_pid}.db",
        f"gauge_livesum_{live_pid}.db",
        f"counter_{dead_pid}.db",
        f"histogram_{dead_pid}.db",
        f"gauge_livesum_{dead_pid}.db",
    )
    with multiprocess.prepared(str(tmp_path)):
        pass
    assert files(tmp_path) == {
        f"counter_{live_pid}.db",
        f"gauge_livesum_{live_pid}.db",
        f"counter_{dead_pid}.db",
        f"histogram_{dead_pid}.db",
    }


def test_each_live_worker_reports_its_own_process_figures(
    tmp_path: Path, live_pid: int, dead_pid: int
) -> None:
    touch(tmp_path, f"counter_{os.getpid()}.db", f"counter_{live_pid}.db", f"counter_{dead_pid}.db")
    registry = CollectorRegistry()
    multiprocess.WorkerProcessCollector(str(tmp_path), registry=registry)
    memory = {
        sample.labels["pid"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "process_resident_memory_bytes"
    }
    assert set(memory) == {str(os.getpid()), str(live_pid)}
    assert all(value > 0 for value in memory.values())


def test_gc_counts_are_added_as_they_grow() -> None:
    registry = CollectorRegistry()
    counters = multiprocess.GcCounters(
        lambda name, doc, labels: Counter(name, doc, labels, registry=registry)
    )
    counters.update()
    before = registry.get_sample_value("python_gc_collections_total", {"generation": "2"})
    gc.collect()
    gc.collect()
    counters.update()
    after = registry.get_sample_value("python_gc_collections_total", {"generation": "2"})
    assert before is not None
    assert after is not None
    assert after >= before + 2


def test_a_directory_set_only_in_the_settings_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = make_settings(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)).metrics
    with pytest.raises(MultiprocDirMismatch, match="process environment"):
        create_metrics(settings)
