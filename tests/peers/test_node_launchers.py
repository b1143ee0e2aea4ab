"""The launchers and the S3 component as real pods on the node (marker ``node``), shaped as KFP 2.17 runs them
(tests/peers/kfp_pod.py: the compiled command with the driver's executor input, the image's own non-root user,
the compiled requests and limits, AWS keys from a Secret as optional env, ServiceAccount ``pipeline-runner``).

Every server a pod reaches listens on the node's IP (the bridge the node fixture makes): moto (S3, CloudWatch
Logs), the FakeSageMaker; the ACK launcher reaches the kube-apiserver through the ``kubernetes`` Service with
in-cluster config (the projected token). The ProcessingJob status is written by ``ack_peer.StandInController``
(the controller cannot be built here) and jobs run the engine for real (``fake_sagemaker.PlaySageMaker``).
What a test reads is what KFP shows a user: the container's exit code, its log, the outputs in ``/minio`` (a
hostPath here, where KFP's launcher would upload them) and the objects in S3.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ack_peer import StandInController, wait_for
from control_plane import ControlPlane
from fake_sagemaker import FakeSageMaker, PlaySageMaker
from kfp_pod import AWS_SECRET, HP, NO_RBAC_SA, RUNNER_SA, aws_secret, case_pod
from kfp_task import KfpTask

from dummy_training import contract

pytestmark = pytest.mark.node

NAMESPACE = "kubeflow"
ACCESS_KEY = "AKIDNODEPODSECRET01"  # the Secret's key: what the fakes must see requests signed with
GRACE = 30  # Argo's and Kubernetes' default terminationGracePeriodSeconds


# ------------------------------------------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def node_moto(node: Any) -> Iterator[str]:
    """moto (S3, SageMaker, CloudWatch Logs) on the node's IP: what the pods reach."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=node.ip, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def node_bucket(node_moto: str) -> tuple[str, dict[str, bytes]]:
    """A bucket on ``node_moto`` holding ``in/model.tar.gz``: (bucket, the model's members)."""
    s3 = boto3.client("s3", endpoint_url=node_moto, region_name="us-east-1", aws_access_key_id="host",
                      aws_secret_access_key="host")  # module scope: before the tests' fake AWS env
    bucket = "node-launchers"
    s3.create_bucket(Bucket=bucket)
    members = {"weights.bin": os.urandom(4096), "code/inference.py": b"print('hi')\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=buf.getvalue())
    return bucket, members


@pytest.fixture(scope="module")
def kubeflow(node: Any, node_moto: str) -> ControlPlane:
    """The node's control plane with KFP's ``kubeflow`` namespace: ``pipeline-runner`` bound by
    components/ack_dummy_training/rbac.yaml (as a KFP install has it), an unbound ServiceAccount, the Secret, and
    the ACK ProcessingJob CRD."""
    from ack_peer import processing_job_crd, repo_root

    cp: ControlPlane = node.control_plane
    cp.apply(processing_job_crd())
    cp.create_namespace(NAMESPACE)
    cp.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": RUNNER_SA, "namespace": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NO_RBAC_SA, "namespace": NAMESPACE}},
        aws_secret(AWS_SECRET, access_key=ACCESS_KEY, secret_key="node-secret", s3_endpoint=node_moto),
    ])
    cp.apply_files([repo_root() / "components" / "ack_dummy_training" / "rbac.yaml"])
    return cp


# ------------------------------------------------------------------------------------------------- pods
def members_of(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


class PodRun:
    """A pod created on the node, followed until its container ``main`` terminates: ``.terminated`` (the last
    terminated state the watch saw, even of a pod deleted meanwhile), ``.log`` (followed from the start, so a
    deleted pod's log is kept)."""

    def __init__(self, cp: ControlPlane, pod: dict[str, Any]) -> None:
        from kubernetes import client

        self.cp, self.name = cp, pod["metadata"]["name"]
        self.core = client.CoreV1Api(cp.api_client())
        self.terminated: dict[str, Any] | None = None
        self.phase = ""
        self._log: list[bytes] = []
        self._done = threading.Event()
        self.core.create_namespaced_pod(NAMESPACE, pod)
        threading.Thread(target=self._watch, daemon=True).start()
        threading.Thread(target=self._follow, daemon=True).start()

    def _watch(self) -> None:
        from kubernetes import watch

        while not self._done.is_set():
            for event in watch.Watch().stream(self.core.list_namespaced_pod, NAMESPACE, timeout_seconds=30,
                                              field_selector=f"metadata.name={self.name}"):
                pod = event["object"]
                self.phase = pod.status.phase or self.phase
                for cs in pod.status.container_statuses or []:
                    if cs.name == "main" and cs.state and cs.state.terminated:
                        self.terminated = {"exit_code": cs.state.terminated.exit_code,
                                           "reason": cs.state.terminated.reason,
                                           "finished": time.monotonic()}
                        self._done.set()
                if event["type"] == "DELETED" or self._done.is_set():
                    self._done.set()
                    return

    def _follow(self) -> None:
        from kubernetes.client.rest import ApiException

        while not self._done.is_set():
            try:
                resp = self.core.read_namespaced_pod_log(self.name, NAMESPACE, container="main", follow=True,
                                                         _preload_content=False)
            except ApiException:  # not started yet
                time.sleep(0.3)
                continue
            for chunk in resp.stream(4096):
                self._log.append(chunk)
            return

    @property
    def log(self) -> str:
        return b"".join(self._log).decode(errors="replace")

    def wait(self, timeout: float = 180) -> dict[str, Any]:
        if not self._done.wait(timeout):
            raise AssertionError(f"pod {self.name} did not finish in {timeout} s (phase {self.phase}):\n{self.log}")
        assert self.terminated is not None, f"pod {self.name} went away without a terminated state"
        time.sleep(0.5)  # the log follower drains what is left
        return self.terminated

    def delete(self, grace: int | None = None) -> float:
        """Delete the pod (``grace`` seconds, else its own); the monotonic time of the request."""
        started = time.monotonic()
        self.core.delete_namespaced_pod(self.name, NAMESPACE, grace_period_seconds=grace)
        return started

    def tail(self, lines: int = 15) -> str:
        return f"terminated {self.terminated}; log tail:\n" + "\n".join(self.log.strip().splitlines()[-lines:])

    def last_line(self) -> str:
        lines = self.log.strip().splitlines()
        return lines[-1] if lines else ""


@pytest.fixture
def run_pod(kubeflow: ControlPlane) -> Iterator[Any]:
    """``run_pod(pod)``: a ``PodRun``; every pod is deleted at the end of the test."""
    runs: list[PodRun] = []

    def start(pod: dict[str, Any]) -> PodRun:
        runs.append(PodRun(kubeflow, pod))
        return runs[-1]

    yield start
    from kubernetes.client.rest import ApiException

    for r in runs:
        with contextlib.suppress(ApiException):
            r.core.delete_namespaced_pod(r.name, NAMESPACE, grace_period_seconds=0)


@pytest.fixture
def minio_dir(node: Any) -> Path:
    """The host directory behind the pod's ``/minio``, owned by the image's user."""
    return Path(node.host_dir(f"minio-{uuid.uuid4().hex[:8]}"))


def on_host(minio_dir: Path, container_path: str) -> Path:
    assert container_path.startswith("/minio/"), container_path
    return minio_dir / container_path[len("/minio/"):]


def job_key(task: KfpTask) -> str:
    """The part of the job/resource name ``runtime.task_job_name_parts`` derives from the task root."""
    return hashlib.sha256(task.task_root.encode()).hexdigest()[:10]


def case(name: str, node: Any, node_image: str, bucket: str, s3: str, sm: str = "", **kw: Any) -> Any:
    return case_pod(name, image=node_image, bucket=bucket, s3_endpoint=s3, sagemaker_endpoint=sm,
                    run_id=str(uuid.uuid4()), **kw)


def delivered(task: KfpTask, minio_dir: Path, s3_endpoint: str, original: dict[str, bytes]) -> dict[str, Any]:
    """Check the model the launcher delivered (the ``output_model`` file and its S3 object: the original members
    plus ``HP``); the executor output's metadata of ``output_model``."""
    model = on_host(minio_dir, task.artifact_path("output_model")).read_bytes()
    got = members_of(model)
    assert json.loads(got.pop(contract.HYPERPARAMETERS_FILENAME)) == HP
    assert got == original
    executor_output = json.loads(on_host(minio_dir, task.output_file).read_text())
    meta = executor_output["artifacts"]["output_model"]["artifacts"][0]["metadata"]
    assert meta["sha256"] == hashlib.sha256(model).hexdigest()
    bucket, key = meta[contract.OUTPUT_MODEL_S3_URI][5:].split("/", 1)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == model
    return dict(meta)


def resource(cp: ControlPlane, key: str) -> dict[str, Any] | None:
    """The ProcessingJob of ``kubeflow`` whose name holds ``key``."""
    from kubernetes import client

    api = client.CustomObjectsApi(cp.api_client())
    found = [r for r in api.list_namespaced_custom_object(contract.ACK_GROUP, contract.ACK_VERSION, NAMESPACE,
                                                          contract.ACK_PLURAL)["items"]
             if key in r["metadata"]["name"]]
    return found[0] if found else None


def assert_one_error_line(run: PodRun, code: int, terminated: dict[str, Any]) -> str:
    assert terminated["exit_code"] == code, run.tail()
    assert "Traceback" not in run.log, run.log
    last = run.last_line()
    assert last.startswith("dummy-training: error: "), run.log
    return last


# ------------------------------------------------------------------------------------------------- ACK
def test_ack_launcher_pod_completes_the_job_in_cluster(node, node_image, node_moto, node_bucket, kubeflow,
                                                       run_pod, minio_dir, tmp_path) -> None:
    bucket, original = node_bucket
    task, pod = case("ack", node, node_image, bucket, node_moto, minio_host_dir=minio_dir)
    play = PlaySageMaker(node_moto, tmp_path / "opt-ml")
    sm = FakeSageMaker(on_create=play, background=True)
    with StandInController(kubeflow, NAMESPACE, sm, match=job_key(task)):
        run = run_pod(pod)
        terminated = run.wait()
    assert terminated["exit_code"] == 0, run.tail()
    assert "using the in-cluster Kubernetes configuration" in run.log
    assert len(play.ran) == 1
    meta = delivered(task, minio_dir, node_moto, original)
    assert sm.names().count("CreateProcessingJob") == 1 and "StopProcessingJob" not in sm.names()
    obj = resource(kubeflow, job_key(task))
    assert obj is not None and obj["status"]["processingJobStatus"] == "Completed"
    assert meta[contract.OUTPUT_JOB_ARN] == obj["status"]["ackResourceMetadata"]["arn"]


def test_ack_launcher_pod_without_rbac_exits_3_with_the_servers_message(node, node_image, node_moto, node_bucket,
                                                                      kubeflow, run_pod) -> None:
    bucket, _ = node_bucket
    _, pod = case("ack-no-rbac", node, node_image, bucket, node_moto)
    run = run_pod(pod)
    last = assert_one_error_line(run, 3, run.wait())
    assert "denied access (403)" in last
    assert f'User "system:serviceaccount:{NAMESPACE}:{NO_RBAC_SA}" cannot ' in last
    assert f'resource "{contract.ACK_PLURAL}"' in last


def test_deleting_the_ack_launcher_pod_mid_wait_deletes_the_resource_exit_130(node, node_image, node_moto,
                                                                             node_bucket, kubeflow, run_pod,
                                                                             tmp_path) -> None:
    bucket, _ = node_bucket
    task, pod = case("ack", node, node_image, bucket, node_moto, grace_seconds=GRACE)
    sm = FakeSageMaker(on_create=PlaySageMaker(node_moto, tmp_path / "opt-ml"), background=True,
                       gate=threading.Event())  # the job runs until the test ends
    with StandInController(kubeflow, NAMESPACE, sm, match=job_key(task)):
        run = run_pod(pod)
        wait_for(lambda: ((resource(kubeflow, job_key(task)) or {}).get("status") or {})
                 .get("processingJobStatus") == "InProgress", 120, "the job InProgress")
        time.sleep(1.0)  # the launcher is in its wait
        deleted = run.delete()
        terminated = run.wait(GRACE + 30)
        assert terminated["exit_code"] == 130, run.tail()
        assert terminated["finished"] - deleted < GRACE, "SIGKILLed at the end of the grace period"
        wait_for(lambda: resource(kubeflow, job_key(task)) is None, 30, "the resource gone")
    assert "StopProcessingJob" in sm.names()


# ------------------------------------------------------------------------------------------------- SageMaker
@pytest.fixture
def sagemaker(node: Any) -> Iterator[Any]:
    """``sagemaker(**kw)``: a FakeSageMaker started on the node's IP; (fake, endpoint)."""
    fakes: list[FakeSageMaker] = []

    def start(**kw: Any) -> tuple[FakeSageMaker, str]:
        fakes.append(FakeSageMaker(**kw))
        return fakes[-1], fakes[-1].start(host=node.ip)

    yield start
    for fake in fakes:
        fake.stop()


def test_sagemaker_launcher_pod_signs_with_the_secrets_keys(node, node_image, node_moto, node_bucket, kubeflow,
                                                           run_pod, minio_dir, sagemaker, tmp_path) -> None:
    bucket, original = node_bucket
    play = PlaySageMaker(node_moto, tmp_path / "opt-ml")
    sm, endpoint = sagemaker(on_create=play, background=True)
    task, pod = case("sagemaker", node, node_image, bucket, node_moto, endpoint, minio_host_dir=minio_dir)
    run = run_pod(pod)
    terminated = run.wait()
    assert terminated["exit_code"] == 0, run.tail()
    assert sm.access_keys and set(sm.access_keys) == {ACCESS_KEY}
    assert sm.names().count("CreateProcessingJob") == 1 and len(play.ran) == 1
    delivered(task, minio_dir, node_moto, original)


def test_sagemaker_launcher_pod_without_its_secret_fails_on_credentials(node, node_image, node_moto, node_bucket,
                                                                       kubeflow, run_pod, sagemaker) -> None:
    bucket, _ = node_bucket
    sm, endpoint = sagemaker()
    _, pod = case("sagemaker-no-secret", node, node_image, bucket, node_moto, endpoint)
    run = run_pod(pod)
    started = time.monotonic()
    last = assert_one_error_line(run, 3, run.wait())  # the optional Secret is missing: the pod still starts
    assert "no AWS credentials found" in last
    assert sm.names() == []
    print(f"no-credentials pod: {run.terminated['finished'] - started:.1f} s from create to exit")  # type: ignore[index]


def test_deleting_the_sagemaker_launcher_pod_stops_the_job_exit_130(node, node_image, node_moto, node_bucket,
                                                                    kubeflow, run_pod, sagemaker) -> None:
    bucket, _ = node_bucket
    sm, endpoint = sagemaker()  # jobs stay InProgress until stopped
    _, pod = case("sagemaker", node, node_image, bucket, node_moto, endpoint, grace_seconds=GRACE)
    run = run_pod(pod)
    wait_for(lambda: "CreateProcessingJob" in sm.names(), 120, "the job created")
    time.sleep(1.0)  # the launcher is in its wait
    deleted = run.delete()
    wait_for(lambda: "StopProcessingJob" in sm.names(), GRACE, "StopProcessingJob within the grace period")
    stopped = time.monotonic()
    terminated = run.wait(GRACE + 30)
    assert terminated["exit_code"] == 130, run.tail()
    assert stopped - deleted < GRACE and terminated["finished"] - deleted < GRACE
    assert set(sm.access_keys) == {ACCESS_KEY}


# ------------------------------------------------------------------------------------------------- S3
def test_s3_component_pod_repacks_s3_to_s3(node, node_image, node_moto, node_bucket, kubeflow, run_pod,
                                           minio_dir) -> None:
    bucket, original = node_bucket
    task, pod = case("s3", node, node_image, bucket, node_moto, minio_host_dir=minio_dir)
    run = run_pod(pod)
    terminated = run.wait()
    assert terminated["exit_code"] == 0, run.tail()
    output_uri = task.executor_input["inputs"]["parameterValues"]["output_uri"]
    key = output_uri.split("/", 3)[3]
    s3 = boto3.client("s3", endpoint_url=node_moto, region_name="us-east-1")
    got = members_of(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert json.loads(got.pop(contract.HYPERPARAMETERS_FILENAME)) == HP
    assert got == original
    executor_output = json.loads(on_host(minio_dir, task.output_file).read_text())
    assert output_uri in json.dumps(executor_output["artifacts"]["output_model"])
