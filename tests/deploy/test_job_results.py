"""Export files as deployed: the worker writes them, the api serves them, the scheduler purges
them, so the three share one writable volume at `JOBS_RESULTS_DIR` (docs/jobs.md)."""

import posixpath
from typing import Any

import yaml

from app.core.config import build_settings
from tests.deploy.manifests import K8S, ROOT, by_kind, dockerfile_stages, render_kustomization

RUNTIME = dockerfile_stages(ROOT / "Dockerfile")["runtime"]
JOB_PROCESSES = ("api", "worker", "scheduler")


def results_dir(environment: dict[str, Any]) -> str:
    """The absolute JOBS_RESULTS_DIR a container of the runtime image uses."""
    named = environment.get("JOBS_RESULTS_DIR") or RUNTIME.env().get("JOBS_RESULTS_DIR")
    configured = build_settings(env_file=None, **({"JOBS_RESULTS_DIR": named} if named else {}))
    directory = str(configured.jobs.results_dir)
    return posixpath.normpath(posixpath.join(RUNTIME.last("WORKDIR"), directory))


def under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def test_the_image_creates_the_directory_for_its_user() -> None:
    """A new volume copies the mount point's owner: the app (uid 10001) may write there."""
    directory = results_dir({})
    created = " ".join(RUNTIME.all("RUN"))
    assert "install -d -o app -g app -m 0700" in created
    assert directory in created


def test_compose_mounts_one_volume_for_every_job_process() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    volumes = {}
    for name in JOB_PROCESSES:
        service = services[name]
        directory = results_dir(service.get("environment", {}))
        mounts = [
            volume.split(":")[0]
            for volume in service.get("volumes", [])
            if under(directory, volume.split(":")[1])
        ]
        assert mounts, f"{name}: JOBS_RESULTS_DIR {directory} is on no volume"
        volumes[name] = mounts[0]
    assert len(set(volumes.values())) == 1, volumes


def test_kubernetes_mounts_one_shared_claim_for_every_job_process() -> None:
    rendered = render_kustomization(K8S / "overlays" / "production")
    config = by_kind(rendered, "ConfigMap")["app-config"]["data"]
    claims = {}
    for name in JOB_PROCESSES:
        pod = by_kind(rendered, "Deployment")[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {**config, **{e["name"]: e.get("value") for e in container.get("env", [])}}
        directory = results_dir(env)
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        mounted = [
            volumes[mount["name"]]
            for mount in container.get("volumeMounts", [])
            if under(directory, mount["mountPath"])
        ]
        # readOnlyRootFilesystem: without a mount the export cannot even create its directory;
        # an emptyDir is one pod's, and the api pods would never see the worker's file.
        assert mounted, f"{name}: JOBS_RESULTS_DIR {directory} is on the read-only root"
        claim = mounted[0].get("persistentVolumeClaim", {}).get("claimName")
        assert claim, f"{name}: JOBS_RESULTS_DIR {directory} is not on a shared volume"
        claims[name] = claim
    (claim,) = set(claims.values())
    spec = by_kind(rendered, "PersistentVolumeClaim")[claim]["spec"]
    assert spec["accessModes"] == ["ReadWriteMany"]
