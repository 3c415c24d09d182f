"""Reading /metrics in tests: the exposition parsed into samples, looked up by name and labels."""

from collections.abc import Iterable, Mapping

from httpx2 import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by its name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels; 0 when absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    """Every value `label` takes among the samples of `name`."""
    return {dict(labels)[label] for sample, labels in samples if sample == name}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (sample, found), v in samples.items() if sample == name and wanted <= found)


async def scrape(client: AsyncClient, headers: Mapping[str, str] | None = None) -> Samples:
    """GET /metrics (from the in-process client's loopback address) and parse it."""
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def names(samples: Iterable[tuple[str, frozenset[tuple[str, str]]]]) -> set[str]:
    """The sample names present."""
    return {name for name, _ in samples}
