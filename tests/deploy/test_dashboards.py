"""The Grafana dashboard and Prometheus rules query only metrics the service exports."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from httpx2 import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from tests.services import service_unavailable

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "production-fastapi-backend.json"
PROMETHEUS = ROOT / "deploy" / "prometheus"
# Series Prometheus itself records for every target: not for the service to export.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "bool", "offset", "le", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels and keywords left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr):
        if match.group(1).lower() not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):  # label_values(<metric>, <label>)
            queries.append(re.sub(r"label_values\((\w+),.*", r"\1", query["query"]))
    return queries


def rule_queries() -> list[str]:
    rules: dict[str, Any] = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def exported(text: str) -> set[str]:
    """Every series name the exposition offers, including families that have no sample yet."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def test_the_promql_reader_finds_metric_names() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket"
        '{job="$job", route!="unmatched"}[5m]))) / on(job) group_left sum(up{job="x"}) > 1'
    )
    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "up"}


async def test_every_queried_metric_is_exported(client: AsyncClient) -> None:
    for path in ("/api/v1/meta", "/api/v1/users/me", "/nope"):
        await client.get(path)
    response = await client.get("/metrics")
    available = exported(response.text)
    queries = dashboard_queries() + rule_queries()
    queried = set().union(*(metric_names(query) for query in queries))
    assert len(queries) >= 20
    assert "jobs_total" in queried
    assert "http_request_duration_seconds_bucket" in queried
    assert queried - available - SCRAPE_SERIES == set()


def test_the_dashboard_covers_what_an_operator_asks() -> None:
    titles = " ".join(
        panel["title"].lower() for panel in json.loads(DASHBOARD.read_text())["panels"]
    )
    for topic in ("request rate", "error", "latency", "pool", "rate limit", "cache hit"):
        assert topic in titles
    for topic in ("auth failures", "jobs"):
        assert topic in titles


def test_the_rules_cover_errors_latency_pool_and_scrapes() -> None:
    rules: dict[str, Any] = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    expected = {"ApiHighErrorRatio", "ApiHighLatencyP99", "DatabasePoolSaturated", "ApiScrapeDown"}
    assert expected <= alerts


def test_promtool_accepts_the_rules_and_the_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        service_unavailable("promtool is not installed (apt-get install prometheus)")
    for command in (["check", "rules", "rules.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [promtool, *command],
            cwd=PROMETHEUS,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout
