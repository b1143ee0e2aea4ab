"""`dummy-training ack run` against the real kube-apiserver, as KFP's ``pipeline-runner`` ServiceAccount (a
TokenRequest token, RBAC from components/ack_dummy_training/rbac.yaml): every request the launcher makes goes
through real authentication, RBAC, the CRD's schema, finalizers and deletionTimestamp. The status is written by
``ack_peer.StandInController`` (the controller itself cannot be built here: see ack_peer), and the jobs really
run the engine on the inputs staged in moto S3."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from ack_peer import FINALIZER, StandInController, wait_for
from control_plane import ControlPlane
from fake_sagemaker import FakeSageMaker, PlaySageMaker

from dummy_training import contract

pytestmark = pytest.mark.peers

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0"
HP = {"epochs": 3, "lr": "0.01"}


def model_archive(path: Path) -> dict[str, bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {"weights.bin": os.urandom(2048), "code/inference.py": b"print('hi')\n"}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return members


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def ack_run(runner: Any, bucket: str, moto_endpoint: str, model: Path | str, out: Path, *extra: str,
            run_id: str) -> list[str]:
    return [sys.executable, "-m", "dummy_training", "ack", "run", "--model", str(model),
            "--hyperparameters-json", json.dumps(HP), "--s3-prefix", f"s3://{bucket}/runs", "--role-arn", ROLE,
            "--image-uri", IMAGE, "--job-name-part", run_id, "--job-name-part", "repack",
            "--endpoint-url", moto_endpoint, "--region", "us-east-1", "--kubeconfig", str(runner.kubeconfig),
            "--poll-interval", "0.2", "--max-poll-interval", "0.5", "--stop-wait-seconds", "30",
            "--model-output-dir", str(out / "model"), "--model-s3-uri-output", str(out / "uri"),
            "--job-arn-output", str(out / "arn"), *extra]


def resources(cp: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    from kubernetes import client

    api = client.CustomObjectsApi(cp.api_client())
    return api.list_namespaced_custom_object(contract.ACK_GROUP, contract.ACK_VERSION, namespace,
                                             contract.ACK_PLURAL)["items"]


def resource(cp: ControlPlane, namespace: str, run_id: str) -> dict[str, Any] | None:
    found = [r for r in resources(cp, namespace) if run_id in r["metadata"]["name"]]
    return found[0] if found else None


def wait_in_progress(cp: ControlPlane, namespace: str, run_id: str) -> None:
    wait_for(lambda: ((resource(cp, namespace, run_id) or {}).get("status") or {}).get("processingJobStatus")
             == "InProgress", 120, f"the job of {run_id} InProgress")


def fresh_job(tmp_path: Path, moto_endpoint: str) -> tuple[Path, dict[str, bytes], threading.Event, FakeSageMaker]:
    """A model archive, its members, and a SageMaker whose jobs run (for real) once the event is set."""
    model = tmp_path / "in" / contract.MODEL_FILENAME
    original = model_archive(model)
    gate = threading.Event()
    sm = FakeSageMaker(on_create=PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"), background=True, gate=gate)
    return model, original, gate, sm


def test_run_completes_and_delivers_the_repacked_model(control_plane, pipeline_runner, s3, bucket, moto_endpoint,
                                                       tmp_path) -> None:
    model = tmp_path / "in" / contract.MODEL_FILENAME
    original = model_archive(model)
    play = PlaySageMaker(moto_endpoint, tmp_path / "opt-ml")
    sm = FakeSageMaker(on_create=play, background=True)
    with StandInController(control_plane, pipeline_runner.namespace, sm, match="run-ok"):
        res = subprocess.run(ack_run(pipeline_runner, bucket, moto_endpoint, model, tmp_path / "out",
                                     run_id="run-ok"), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert len(play.ran) == 1
    delivered = members(tmp_path / "out" / "model" / contract.MODEL_FILENAME)
    assert json.loads(delivered.pop(contract.HYPERPARAMETERS_FILENAME)) == HP
    assert delivered == original
    uri = (tmp_path / "out" / "uri").read_text().strip()
    assert uri.startswith(f"s3://{bucket}/runs/") and uri.endswith(f"/output/{contract.MODEL_FILENAME}")
    key = uri.split("/", 3)[3]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == (
        tmp_path / "out" / "model" / contract.MODEL_FILENAME).read_bytes()
    obj = resource(control_plane, pipeline_runner.namespace, "run-ok")
    assert obj is not None and obj["status"]["processingJobStatus"] == "Completed"
    assert (tmp_path / "out" / "arn").read_text().strip() == obj["status"]["ackResourceMetadata"]["arn"]
    assert FINALIZER in obj["metadata"]["finalizers"]  # a completed resource stays (and keeps the finalizer)
    calls = sm.names()
    assert calls[:2] == ["DescribeProcessingJob", "CreateProcessingJob"]  # it describes before it creates
    assert calls.count("CreateProcessingJob") == 1 and "StopProcessingJob" not in calls


def test_a_failed_job_exits_5_with_the_failure_reason(control_plane, pipeline_runner, bucket, moto_endpoint, s3,
                                                     tmp_path) -> None:
    # in S3: a local model is judged before anything is staged (exit 2, no job); one already in S3 is the job's to
    # read, and the engine in the job really fails on it
    s3.put_object(Bucket=bucket, Key=f"in/{contract.MODEL_FILENAME}", Body=b"this is not a gzip tar archive")
    model = f"s3://{bucket}/in/{contract.MODEL_FILENAME}"
    sm = FakeSageMaker(on_create=PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"), background=True)
    with StandInController(control_plane, pipeline_runner.namespace, sm, match="run-fail"):
        res = subprocess.run(ack_run(pipeline_runner, bucket, moto_endpoint, model, tmp_path / "out",
                                     run_id="run-fail"), capture_output=True, text=True, timeout=240)
    assert res.returncode == 5, res.stderr
    obj = resource(control_plane, pipeline_runner.namespace, "run-fail")
    assert obj is not None and obj["status"]["processingJobStatus"] == "Failed"
    reason = obj["status"]["failureReason"]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("dummy-training: error: processing job ") and " failed: " in last  # one line
    assert " ".join(reason.split()[-8:]) in last  # the engine's own error, the job's last word
    assert "Traceback" not in res.stderr


VALIDATION = ("1 validation error detected: Value 'ml.m5.huge' at 'processingResources.clusterConfig.instanceType' "
              "failed to satisfy constraint: Member must satisfy enum value set: [ml.m5.large, ml.m5.xlarge]")
BAD_VALUE = "The value 'ml.m5.huge' for parameter InstanceType is not valid"


@pytest.mark.parametrize(("code", "message", "condition"), [
    # one of the controller's terminal codes (ResourceInUse is another, but a taken name sends a derived name on to
    # the next attempt: test_a_rerun_after_sigterm_meets_the_stopped_job_and_moves_to_the_next_attempt_name)
    ("InvalidParameterValue", BAD_VALUE, "ACK.Terminal"),
    ("ValidationException", VALIDATION, "ACK.Recoverable"),  # SageMaker's own: "recoverable", retried for ever
], ids=["terminal", "validation"])
def test_a_request_sagemaker_rejects_exits_5(control_plane, pipeline_runner, bucket, moto_endpoint, tmp_path,
                                            code: str, message: str, condition: str) -> None:
    run_id = f"run-reject-{code.lower()}"
    model = tmp_path / "in" / contract.MODEL_FILENAME
    model_archive(model)
    sm = FakeSageMaker(reject=lambda request: (code, message))
    with StandInController(control_plane, pipeline_runner.namespace, sm, match=run_id):
        res = subprocess.run(ack_run(pipeline_runner, bucket, moto_endpoint, model, tmp_path / "out",
                                     run_id=run_id), capture_output=True, text=True, timeout=240)
    assert res.returncode == 5, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert f"was rejected ({condition}" in last and f"api error {code}: {message}" in last
    assert "CreateProcessingJob" in sm.names() and not sm.jobs
    obj = resource(control_plane, pipeline_runner.namespace, run_id)
    assert obj is not None and not obj["metadata"].get("finalizers")  # nothing in AWS: the controller let go


def test_a_transient_create_error_is_waited_through(control_plane, pipeline_runner, bucket, moto_endpoint,
                                                    tmp_path) -> None:
    model = tmp_path / "in" / contract.MODEL_FILENAME
    model_archive(model)
    answers = [("ResourceLimitExceeded", "The account-level service limit 'ml.m5.large for processing job usage' "
                                         "is 4 Instances, with current utilization of 4 Instances")]
    sm = FakeSageMaker(on_create=PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"), background=True,
                       reject=lambda request: answers.pop() if answers else None)
    with StandInController(control_plane, pipeline_runner.namespace, sm, match="run-transient"):
        res = subprocess.run(ack_run(pipeline_runner, bucket, moto_endpoint, model, tmp_path / "out",
                                     run_id="run-transient"), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "controller is retrying: api error ResourceLimitExceeded" in res.stderr
    assert sm.names().count("CreateProcessingJob") == 2


def test_sigterm_deletes_the_resource_and_the_controller_stops_the_job(control_plane, pipeline_runner, bucket,
                                                                       moto_endpoint, tmp_path) -> None:
    model = tmp_path / "in" / contract.MODEL_FILENAME
    model_archive(model)
    ns = pipeline_runner.namespace
    sm = FakeSageMaker(on_create=lambda request: None, background=True, gate=threading.Event())  # runs until stopped
    with StandInController(control_plane, ns, sm, match="run-term"):
        proc = subprocess.Popen(ack_run(pipeline_runner, bucket, moto_endpoint, model, tmp_path / "out",
                                        run_id="run-term"), stderr=subprocess.PIPE, text=True)
        try:
            wait_in_progress(control_plane, ns, "run-term")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 130, err
        wait_for(lambda: resource(control_plane, ns, "run-term") is None, 30, "the resource gone")
    assert sm.names().count("StopProcessingJob") == 1
    (job,) = sm.jobs.values()
    assert job["ProcessingJobStatus"] == "Stopped"
    assert "deleted processingjobs.sagemaker.services.k8s.aws/" in err


def test_a_rerun_after_sigterm_meets_the_stopped_job_and_moves_to_the_next_attempt_name(
        control_plane, pipeline_runner, bucket, moto_endpoint, tmp_path) -> None:
    """SageMaker keeps a stopped job's name: the controller describes before it creates, finds it, and refuses
    to adopt it (ACK.Terminal "Resource already exists", as the real v1.9.1 controller answered on this tier's
    control plane). The retry (a KFP retry of the cancelled task: same derived name) sees that refusal of the
    resource it just created and takes the next attempt name (-a2) at once."""
    model, original, gate, sm = fresh_job(tmp_path, moto_endpoint)
    ns = pipeline_runner.namespace
    argv = ack_run(pipeline_runner, bucket, moto_endpoint, model, tmp_path / "out", run_id="run-rerun")
    with StandInController(control_plane, ns, sm, match="run-rerun"):
        first = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        try:
            wait_in_progress(control_plane, ns, "run-rerun")
            first.send_signal(signal.SIGTERM)
            assert first.wait(60) == 130
        finally:
            first.kill()
        wait_for(lambda: resource(control_plane, ns, "run-rerun") is None, 30, "the resource gone")
        gate.set()
        second = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    assert "a SageMaker job named dummy-training-run-rerun-repack exists already" in second.stderr
    assert "run-rerun-repack-a2" in (tmp_path / "out" / "uri").read_text()
    assert {name: job["ProcessingJobStatus"] for name, job in sm.jobs.items()} == {
        "dummy-training-run-rerun-repack": "Stopped", "dummy-training-run-rerun-repack-a2": "Completed"}
    delivered = members(tmp_path / "out" / "model" / contract.MODEL_FILENAME)
    delivered.pop(contract.HYPERPARAMETERS_FILENAME)
    assert delivered == original


def test_a_restarted_launcher_reattaches_to_the_running_job(control_plane, pipeline_runner, bucket,
                                                             moto_endpoint, tmp_path) -> None:
    model, original, gate, sm = fresh_job(tmp_path, moto_endpoint)
    ns = pipeline_runner.namespace
    argv = ack_run(pipeline_runner, bucket, moto_endpoint, model, tmp_path / "out", run_id="run-again")
    with StandInController(control_plane, ns, sm, match="run-again"):
        first = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        try:
            wait_in_progress(control_plane, ns, "run-again")
        finally:
            first.kill()  # the pod is gone without cleaning up (node lost, OOM-killed)
            first.wait()
        uid = resource(control_plane, ns, "run-again")["metadata"]["uid"]  # type: ignore[index]
        second = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        try:
            gate.set()  # the job finishes while no launcher watches... or once the second one does
            _, err = second.communicate(timeout=240)
        finally:
            second.kill()
    assert second.returncode == 0, err
    assert "re-attaching to existing" in err
    assert resource(control_plane, ns, "run-again")["metadata"]["uid"] == uid  # type: ignore[index]
    assert sm.names().count("CreateProcessingJob") == 1
    delivered = members(tmp_path / "out" / "model" / contract.MODEL_FILENAME)
    delivered.pop(contract.HYPERPARAMETERS_FILENAME)
    assert delivered == original
