"""The real node (tests/peers/node.py): pods of our image, shaped as KFP 2.17 runs our components
(``pytest -m node tests/peers``; root, and the image built by container/build.sh).

Each task pod is what KFP's Argo executor template runs (tests/kfp_task.py: the committed component.yaml's
``sh -ec`` command with an ExecutorInput, the image's non-root user, requests and limits, the scratch emptyDirs).
The artifact store is a hostPath at ``/minio`` (artifact URIs ``minio://mlpipeline/...`` map there, as in KFP,
where the launcher downloads inputs there and uploads outputs from there): the test puts the model in it and
reads the output model back from it."""

from __future__ import annotations

import json
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from archives import HYPERPARAMETERS_BYTES, make_model_archive
from kfp_task import executor_input, task_pod, zeros_model
from node import TEST_TIMEOUT

# the first test's setup may wait for another session's node (node.LOCK_WAIT), then brings this one up
pytestmark = [pytest.mark.node, pytest.mark.timeout(TEST_TIMEOUT)]

HP = {"epochs": 3, "lr": 0.001}
APP_UID = 1000  # container/Dockerfile's APP_UID


def test_a_pod_of_our_image_runs_as_its_non_root_user_and_its_exit_code_is_seen(node: Any, node_image: str) -> None:
    ns = node.create_namespace("smoke")
    pod = node.run_pod(ns, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "exit3"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": node_image, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "id -u; exit 3"]}]},
    }, timeout=120)
    assert pod.status.phase == "Failed"
    assert node.terminated(pod).exit_code == 3
    assert node.log(ns, "exit3").split() == [str(APP_UID)]
    assert pod.status.host_ip == node.ip


# ------------------------------------------------------------------------------------------------ helpers
class Store:
    """The ``/minio`` hostPath of one test: ``put`` a model, ``path`` of an artifact URI, the pod's volume."""

    def __init__(self, node: Any, name: str) -> None:
        self.root = node.host_dir(name, uid=APP_UID)

    def path(self, uri: str) -> Path:
        assert uri.startswith("minio://")
        return self.root / uri[len("minio://"):]

    def put(self, uri: str, data: bytes | None = None) -> Path:
        path = self.path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents]:  # the image's user creates the outputs' folders
            if parent == self.root:
                break
            os.chown(parent, APP_UID, APP_UID)
        if data is not None:
            path.write_bytes(data)
        path.chmod(0o644) if path.exists() else None
        return path

    def volume(self) -> dict[str, dict[str, Any]]:
        return {"/minio": {"hostPath": {"path": str(self.root), "type": "Directory"}}}

    def files(self, prefix: str = "mlpipeline/out") -> list[Path]:
        return sorted(p for p in (self.root / prefix).rglob("*") if p.is_file())


MODEL_URI = "minio://mlpipeline/in/model.tar.gz"
OUT = "minio://mlpipeline/out"


def repack_pod(name: str, image: str, store: Store, *, hyperparameters_json: str = json.dumps(HP),
               resources: dict[str, dict[str, str]] | None = None, env: dict[str, str] | None = None,
               grace_seconds: int = 30) -> dict[str, Any]:
    """The native component's task pod: the model from the store, its three outputs into it."""
    executor = executor_input(
        inputs={"model": MODEL_URI},
        outputs={"output_model": f"{OUT}/output_model", "report": f"{OUT}/report", "metrics": f"{OUT}/metrics"},
        parameters={"hyperparameters_json": hyperparameters_json},
        output_file="/tmp/kfp_outputs/output_metadata.json")
    return task_pod(name, "dummy_training", executor, image, resources=resources, volumes=store.volume(), env=env,
                    grace_seconds=grace_seconds)


def limits(cpu: str, memory: str) -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": "100m", "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "dummy-training: error:" in line]


def read_output(path: Path) -> tuple[dict[str, tarfile.TarInfo], Any]:
    """The output's members by name and its root hyperparameters.json (None if none), in one streamed pass (a
    2 GiB member is not held in memory)."""
    found: dict[str, tarfile.TarInfo] = {}
    hp = None
    with tarfile.open(path, "r|gz") as tar:
        for m in tar:
            found[m.name] = m
            if m.name.removeprefix("./") == "hyperparameters.json":
                fh = tar.extractfile(m)
                assert fh is not None
                hp = json.loads(fh.read())
    return found, hp


def random_model(path: Path, size: int) -> Path:
    """A model.tar.gz with one incompressible member of ``size`` bytes and no hyperparameters.json."""
    info = tarfile.TarInfo("model/weights.bin")
    info.size, info.mtime, info.mode = size, 1_700_000_000, 0o644
    co = zlib.compressobj(1, zlib.DEFLATED, 31)
    with path.open("wb") as out:
        out.write(co.compress(info.tobuf(format=tarfile.PAX_FORMAT)))
        left = size
        while left:
            n = min(left, 8 << 20)
            out.write(co.compress(os.urandom(n)))
            left -= n
        out.write(co.compress(bytes((-size) % 512 + 1024)))
        out.write(co.flush())
    path.chmod(0o644)
    return path


def assert_succeeded(node: Any, ns: str, pod: Any) -> str:
    log = node.log(ns, pod.metadata.name)
    state = node.terminated(pod)
    assert pod.status.phase == "Succeeded" and state.exit_code == 0, f"{state}\n{log}"
    return log


# ------------------------------------------------------------------------------------------------ the repack
def test_the_native_component_injects_into_a_model_from_a_volume(node: Any, node_image: str) -> None:
    ns = node.create_namespace("inject")
    store = Store(node, "inject")
    store.put(MODEL_URI, make_model_archive(weights_size=2_000_000))
    pod = node.run_pod(ns, repack_pod("inject", node_image, store), timeout=300)
    log = assert_succeeded(node, ns, pod)
    out = store.path(f"{OUT}/output_model")
    names, hp = read_output(out)
    assert hp == HP
    assert {"./model/weights.bin", "./config.json", "./code/inference.py"} <= set(names)
    assert names["./model/weights.bin"].size == 2_000_000
    assert "decision: injected" in log
    assert store.path(f"{OUT}/report").read_text().strip()
    assert os.stat(out).st_uid == APP_UID  # written by the image's user, not root


def test_the_native_component_preserves_a_model_that_has_its_own(node: Any, node_image: str) -> None:
    ns = node.create_namespace("preserve")
    store = Store(node, "preserve")
    model = make_model_archive(with_hyperparameters=True)
    store.put(MODEL_URI, model)
    pod = node.run_pod(ns, repack_pod("preserve", node_image, store), timeout=300)
    log = assert_succeeded(node, ns, pod)
    assert store.path(f"{OUT}/output_model").read_bytes() == model
    assert json.loads(HYPERPARAMETERS_BYTES) != HP
    assert "preserved" in log


def test_a_bad_model_fails_the_pod_with_exit_2_and_one_line_in_its_log(node: Any, node_image: str) -> None:
    ns = node.create_namespace("bad")
    store = Store(node, "bad")
    store.put(MODEL_URI, b"this is not a gzip archive\n" * 100)
    pod = node.run_pod(ns, repack_pod("bad", node_image, store), timeout=300)
    log = node.log(ns, "bad")
    assert pod.status.phase == "Failed", log
    assert node.terminated(pod).exit_code == 2, log
    (line,) = error_lines(log)
    assert "model" in line
    assert "Traceback" not in log
    assert store.files() == []


# ------------------------------------------------------------------------------------------------ limits
@pytest.mark.parametrize(("cpu", "scanner"), [("1", "zlib"), ("2", "rapidgzip")])
def test_the_pods_cpu_limit_chooses_the_scanner(node: Any, node_image: str, cpu: str, scanner: str,
                                                tmp_path: Path) -> None:
    """``nproc`` and ``os.cpu_count()`` say 2 in a pod whatever its CPU limit: only the cgroup's quota tells."""
    ns = node.create_namespace(f"cpu{cpu}")
    store = Store(node, f"cpu{cpu}")
    random_model(store.put(MODEL_URI), 24 << 20)
    pod = node.run_pod(ns, repack_pod(f"cpu{cpu}", node_image, store, resources=limits(cpu, "1Gi")), timeout=300)
    log = assert_succeeded(node, ns, pod)
    (line,) = [ln for ln in log.splitlines() if "scanned with" in ln]
    assert line.split("scanned with ")[1].strip().startswith(scanner), line
    assert read_output(store.path(f"{OUT}/output_model"))[1] == HP


@pytest.mark.parametrize("model", ["gzip-bomb-2GiB", "random-190MiB"])
def test_a_200Mi_memory_limit_is_respected_whatever_the_model(node: Any, node_image: str, model: str) -> None:
    """The parallel scan's memory grows with the compression ratio (2.4 GB for a bomb of zeros); it runs in a
    child held to a budget: the budget must come from the pod's own memory limit (cgroup), or the kernel kills
    the pod (OOMKilled) before the child's watchdog acts."""
    ns = node.create_namespace("mem")
    store = Store(node, f"mem-{model}")
    path = store.put(MODEL_URI)
    if model.startswith("gzip-bomb"):
        zeros_model(path, 2 << 30, name="model/weights.bin")
        path.chmod(0o644)
        size = 2 << 30
    else:
        size = 190 << 20
        random_model(path, size)
    pod = node.run_pod(ns, repack_pod("mem", node_image, store, resources=limits("2", "200Mi")), timeout=600)
    state = node.terminated(pod)
    assert state.reason != "OOMKilled", f"{state}\n{node.log(ns, 'mem')}"
    log = assert_succeeded(node, ns, pod)
    out = store.path(f"{OUT}/output_model")
    names, hp = read_output(out)
    assert names["model/weights.bin"].size == size, log
    assert hp == HP


# ------------------------------------------------------------------------------------------------ cancel
def test_deleting_the_pod_mid_repack_exits_130_and_leaves_no_output(node: Any, node_image: str) -> None:
    """Kubernetes (and KFP's cancel) stop a task by SIGTERM to the container's first process, SIGKILL after the
    grace period. A finalizer keeps the deleted pod readable until the test has seen its container status."""

    ns = node.create_namespace("cancel")
    store = Store(node, "cancel")
    zeros_model(store.put(MODEL_URI), 4 << 30, name="model/weights.bin")
    store.path(MODEL_URI).chmod(0o644)
    spec = repack_pod("cancel", node_image, store, resources=limits("250m", "1Gi"),
                      env={"DUMMY_TRAINING_SCAN_THREADS": "1"})
    spec["metadata"]["finalizers"] = ["dummy-training.test/keep"]
    node.core.create_namespaced_pod(ns, spec)
    try:
        node.wait_pod(ns, "cancel", lambda p: "input size:" in _log_or_empty(node, ns, "cancel"), 180,
                      "to start the repack")
        node.core.delete_namespaced_pod("cancel", ns)  # grace period 30 s, as the pod says
        pod = node.wait_pod(ns, "cancel", lambda p: node.terminated(p) is not None, 60, "to terminate")
        log = _log_or_empty(node, ns, "cancel")
    finally:
        node.core.patch_namespaced_pod("cancel", ns, {"metadata": {"finalizers": None}})
    state = node.terminated(pod)
    assert state.exit_code == 130, f"{state}\n{log}"
    (line,) = error_lines(log)
    assert "SIGTERM" in line
    assert "Traceback" not in log
    assert store.files() == [], "partial output left behind"


def _log_or_empty(node: Any, ns: str, name: str) -> str:
    from kubernetes.client import ApiException

    try:
        return str(node.log(ns, name))
    except ApiException:  # the container has not started yet
        return ""
