"""The Kubernetes manifests: valid against the API schemas, and right about the app."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from app.core.config import Settings, build_settings
from tests.deploy.manifests import (
    K8S,
    ROOT,
    Manifest,
    by_kind,
    dockerfile_stages,
    load_documents,
    render_kustomization,
    unknown_variables,
)
from tests.deploy.routes import app_paths
from tests.harness import STRONG_SECRET

KUBERNETES_VERSION = "1.33.0"  # the oldest version the manifests promise to work on
OVERLAY = render_kustomization(K8S / "overlays" / "production")
BASE = render_kustomization(K8S / "base")
DEPLOYMENTS = by_kind(OVERLAY, "Deployment")
RUNTIME_UID = int(dockerfile_stages(ROOT / "Dockerfile")["runtime"].last("USER").split(":")[0])
MANIFEST_FILES = sorted(path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml")


def pod_spec(doc: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def workloads() -> list[Manifest]:
    return [*DEPLOYMENTS.values(), *by_kind(OVERLAY, "Job").values()]


def environment() -> dict[str, str]:
    """The variables every container gets from the ConfigMap and the Secret."""
    config = by_kind(OVERLAY, "ConfigMap")["app-config"]["data"]
    secret = by_kind(OVERLAY, "Secret")["app-secrets"]["stringData"]
    return {**config, **secret}


@pytest.mark.parametrize("rendered", ["base", "overlay"])
def test_every_rendered_manifest_is_valid_for_kubernetes(rendered: str) -> None:
    docs = BASE if rendered == "base" else OVERLAY
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda path: str(path.relative_to(K8S)))
def test_every_file_is_a_valid_resource_or_patch(path: Path) -> None:
    for doc in load_documents(path):
        if "overlays" in path.parts and doc["kind"] != "Namespace":
            continue  # a partial patch: valid once merged (the rendered overlay above)
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_overlay_has_every_part() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in OVERLAY}
    assert kinds >= {
        ("Deployment", "api"),
        ("Deployment", "worker"),
        ("Deployment", "scheduler"),
        ("Service", "api"),
        ("HorizontalPodAutoscaler", "api"),
        ("PodDisruptionBudget", "api"),
        ("Job", "migrate"),
        ("ConfigMap", "app-config"),
        ("Secret", "app-secrets"),
    }
    images = {c["image"] for doc in workloads() for c in pod_spec(doc)["containers"]}
    assert images == {"registry.example.com/production-fastapi-backend:0.1.0"}


def test_every_variable_is_a_real_setting_with_a_valid_value() -> None:
    values = environment()
    assert unknown_variables(values) == set()
    for doc in workloads():
        for container in pod_spec(doc)["containers"]:
            assert unknown_variables(item["name"] for item in container.get("env", [])) == set()
    # Production accepts the ConfigMap once the Secret holds a real secret ...
    build_settings(env_file=None, **(values | {"JWT_SECRET": STRONG_SECRET}))
    # ... and refuses to start with the example Secret as it is.
    with pytest.raises(ValueError, match="JWT_SECRET"):
        build_settings(env_file=None, **values)


def test_pods_run_as_the_images_non_root_user_on_a_read_only_root() -> None:
    for doc in workloads():
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == RUNTIME_UID
        mounts_by_volume = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert mounts["/tmp"] in mounts_by_volume  # noqa: S108 - the container's own /tmp
            multiproc = dockerfile_stages(ROOT / "Dockerfile")["runtime"].env()
            assert mounts[multiproc["PROMETHEUS_MULTIPROC_DIR"]] in mounts_by_volume
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]["memory"]


def test_api_probes_point_at_the_apps_health_routes() -> None:
    container = pod_spec(DEPLOYMENTS["api"])["containers"][0]
    paths = app_paths()
    probes = {
        kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe")
    }
    assert probes == {"startupProbe": "/api/v1/health/live", "livenessProbe": "/api/v1/health/live"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/ready"
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[kind]["httpGet"]["path"] in paths
        assert container[kind]["httpGet"]["port"] == container["ports"][0]["name"]
    # Readiness answers within 3 s: each check is bounded by HEALTH_CHECK_TIMEOUT (<= 2.5 s).
    assert container["readinessProbe"]["timeoutSeconds"] >= 3
    assert float(environment()["HEALTH_CHECK_TIMEOUT"]) <= 2.5


def test_termination_grace_outlasts_the_drain() -> None:
    """preStop, then SIGTERM: readiness fails, requests drain, those in flight finish."""
    server = build_settings(env_file=None, **(environment() | {"JWT_SECRET": STRONG_SECRET})).server
    for name in ("api", "worker", "scheduler"):
        spec = pod_spec(DEPLOYMENTS[name])
        [container] = spec["containers"]
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {"seconds": 0})
        needed = pre_stop["seconds"] + server.shutdown_drain_seconds + server.shutdown_grace_seconds
        assert spec["terminationGracePeriodSeconds"] > needed, name
    api = pod_spec(DEPLOYMENTS["api"])["containers"][0]
    assert api["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_worker_and_scheduler_liveness_on_their_probe_ports() -> None:
    for name, port in (("worker", 8001), ("scheduler", 8002)):
        container = pod_spec(DEPLOYMENTS[name])["containers"][0]
        assert container["command"] == ["app", name, "--host", "0.0.0.0"]  # noqa: S104
        assert container["ports"] == [{"name": "probe", "containerPort": port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "probe"}
    scheduler = DEPLOYMENTS["scheduler"]["spec"]
    assert scheduler["replicas"] == 1
    assert scheduler["strategy"]["type"] == "Recreate"  # never two schedulers at once


def test_api_serves_with_the_configured_workers() -> None:
    container = pod_spec(DEPLOYMENTS["api"])["containers"][0]
    assert container["command"][:2] == ["app", "serve"]
    assert container["args"] == ["--workers", "$(WEB_CONCURRENCY)"]
    workers = {item["name"]: item["value"] for item in container["env"]}["WEB_CONCURRENCY"]
    assert int(workers) >= 1


def test_migration_job_runs_the_apps_migrate_command() -> None:
    job = by_kind(OVERLAY, "Job")["migrate"]
    container = pod_spec(job)["containers"][0]
    assert container["command"] == ["app", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    api_image = pod_spec(DEPLOYMENTS["api"])["containers"][0]["image"]
    assert container["image"] == api_image  # the migrations of the code being rolled out


def test_autoscaling_and_disruption_budget_target_the_api() -> None:
    hpa = by_kind(OVERLAY, "HorizontalPodAutoscaler")["api"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "api"
    assert {metric["resource"]["name"] for metric in hpa["metrics"]} == {"cpu", "memory"}
    assert hpa["minReplicas"] >= 2
    pdb = by_kind(OVERLAY, "PodDisruptionBudget")["api"]["spec"]
    labels = DEPLOYMENTS["api"]["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < hpa["minReplicas"]
    service = by_kind(OVERLAY, "Service")["api"]["spec"]
    assert service["selector"].items() <= labels.items()


def test_settings_cover_every_group() -> None:
    """The ConfigMap's names are spread over real groups (guards against a renamed setting)."""
    names = set(environment())
    groups = {group for group, cls in Settings.groups().items() if names & set(cls.env_names())}
    assert {"app", "http", "database", "server", "metrics"} <= groups
