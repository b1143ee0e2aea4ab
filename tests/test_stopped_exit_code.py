"""A stopped remote job exits 6, as README's exit-code table promises, through the real CLI processes: SageMaker's
Stopped and the overall timeout (`dummy-training sagemaker`), ACK's Stopped, the overall timeout and an explicit
job name whose resource is being deleted (`dummy-training ack run`). The exit code is the process's own, the error
one line, and no model is delivered (no model.tar.gz, no partial file, nothing on stdout).

SageMaker is ``fake_sagemaker.FakeSageMaker``, the Kubernetes API ``fake_kube.FakeKube``, S3 the moto server; the
waits are bounded by short ``--timeout-seconds`` and poll intervals, so a wrong outcome shows in seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import ack_reference
import pytest
from fake_kube import FakeKube
from fake_sagemaker import FakeSageMaker

from dummy_training.errors import EXIT_JOB_FAILED, JobStoppedError

REPO = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/dummy-training"
NS = "pipelines"
STOPPED_ROW = "the remote job was stopped (cancelled, timed out)"


def _readme_exit_code(meaning: str) -> int:
    """The code README's exit-code table gives ``meaning`` (the promise the CLI is held to)."""
    for line in (REPO / "README.md").read_text().splitlines():
        row = re.fullmatch(r"\| (\d+) \| (.*) \|", line)
        if row and row.group(2) == meaning:
            return int(row.group(1))
    raise AssertionError(f"README's exit-code table has no row {meaning!r}")


STOPPED = _readme_exit_code(STOPPED_ROW)


def test_the_readme_promises_6_for_a_stopped_job_and_the_error_carries_it() -> None:
    assert STOPPED == 6
    assert JobStoppedError.exit_code == STOPPED
    assert JobStoppedError.exit_code != EXIT_JOB_FAILED  # a stopped job is not a failed one


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dummy_training", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("dummy-training: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def _nothing_delivered(res: subprocess.CompletedProcess[str], out: Path) -> None:
    assert res.stdout == ""  # no model URI
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


# ---------------------------------------------------------------------------------------------- SageMaker
def _sagemaker_args(bucket: str, out: Path, *extra: str) -> list[str]:
    return ["sagemaker", "--model", f"s3://{bucket}/m/model.tar.gz", "--s3-prefix", f"s3://{bucket}/runs",
            "--role-arn", ROLE, "--image-uri", "img:1", "--job-name", "stopped-job", "--no-logs",
            "--poll-interval", "0.05", "--max-poll-interval", "0.1", "--stop-wait-seconds", "5",
            "--timeout-seconds", "10", "--model-output-dir", str(out), *extra]


@pytest.mark.parametrize(("status", "extra", "message"), [
    ("Stopped", (), "processing job stopped-job was stopped"),
    ("InProgress", ("--timeout-seconds", "1"),
     "processing job stopped-job did not finish within 1 s and was stopped (status Stopping)"),
], ids=["stopped", "timeout"])
def test_sagemaker_stopped_job_exits_6(s3, bucket: str, moto_endpoint: str, tmp_path: Path, status: str,
                                       extra: tuple[str, ...], message: str) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    fake = FakeSageMaker(running_status=status)
    endpoint = fake.start()
    out = tmp_path / "out"
    try:
        res = _run(_sagemaker_args(bucket, out, *extra),
                   {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_SAGEMAKER": endpoint})
    finally:
        fake.stop()
    assert res.returncode == STOPPED, res.stderr
    assert _one_error_line(res.stderr).startswith(f"dummy-training: error: {message}"), res.stderr
    _nothing_delivered(res, out)
    if status == "InProgress":  # the launcher stopped the job it gave up on
        assert "StopProcessingJob" in fake.names()


# ---------------------------------------------------------------------------------------------------- ACK
def _ack_args(bucket: str, moto_endpoint: str, kubeconfig: Path, out: Path, *extra: str) -> list[str]:
    return ["ack", "run", "--model", f"s3://{bucket}/m/model.tar.gz", "--s3-prefix", f"s3://{bucket}/runs",
            "--role-arn", ROLE, "--image-uri", "img:1", "--endpoint-url", moto_endpoint, "--job-name", "my-job",
            "--kubeconfig", str(kubeconfig), "--poll-interval", "0.05", "--max-poll-interval", "0.05",
            "--stop-wait-seconds", "2", "--timeout-seconds", "10", "--model-output-dir", str(out), *extra]


def _status(name: str) -> dict:
    return ack_reference.fixture(name)["status"]


@pytest.mark.parametrize("case", ["stopped", "timeout", "being-deleted"])
def test_ack_stopped_job_exits_6(s3, bucket: str, moto_endpoint: str, tmp_path: Path, case: str) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    out = tmp_path / "out"
    path = f"/apis/sagemaker.services.k8s.aws/v1alpha1/namespaces/{NS}/processingjobs/my-job"
    with FakeKube() as kube:
        kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
        extra: tuple[str, ...] = ()
        if case == "stopped":
            kube.statuses = [_status("in_progress.yaml"), _status("stopped.yaml")]
            message = "processing job my-job was stopped"
        elif case == "timeout":
            kube.statuses = [_status("in_progress.yaml")]  # for ever
            extra = ("--timeout-seconds", "1")
            message = "processing job my-job did not finish within 1 s; deleted processingjobs"
        else:  # an earlier run's resource under the explicit name, being deleted (its finalizer still there)
            kube.put(NS, {"apiVersion": "sagemaker.services.k8s.aws/v1alpha1", "kind": "ProcessingJob",
                          "metadata": {"name": "my-job", "namespace": NS,
                                       "deletionTimestamp": "2026-12-01T20:00:00Z",
                                       "finalizers": ["finalizers.sagemaker.services.k8s.aws/ProcessingJob"]},
                          "spec": {"processingJobName": "my-job"}, "status": _status("in_progress.yaml")})
            message = f"processingjobs.sagemaker.services.k8s.aws/my-job in namespace {NS} is being deleted"
        res = _run(_ack_args(bucket, moto_endpoint, kubeconfig, out, *extra), {})
        methods = kube.methods()
        deletes = [p for method, p, _ in kube.requests if method == "DELETE"]
        left = set(kube.objects)
    assert res.returncode == STOPPED, res.stderr
    assert _one_error_line(res.stderr).startswith(f"dummy-training: error: {message}"), res.stderr
    _nothing_delivered(res, out)
    if case == "stopped":  # an ended job is left for `kubectl describe`
        assert "POST" in methods and deletes == [] and left == {(NS, "my-job")}
    elif case == "timeout":  # the launcher deleted its resource: the controller stops the job
        assert "POST" in methods and deletes == [path] and left == set()
    else:  # neither re-attached to nor re-created; the deletion is the controller's to finish
        assert "POST" not in methods and deletes == [] and left == {(NS, "my-job")}
