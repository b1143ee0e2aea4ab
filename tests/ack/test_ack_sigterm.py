"""A real `dummy-training ack run` process, stopped with SIGTERM/SIGINT while it waits: it must delete the
ProcessingJob resource (so the ACK controller stops the SageMaker job) and exit 130.

The Kubernetes API is the fake server of ``fake_kube`` on 127.0.0.1 (reached through a kubeconfig), S3 staging
is the moto server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ack_reference
import pytest
from archives import make_model_archive
from fake_kube import FakeKube

from dummy_training.errors import EXIT_INTERRUPTED

NAME = "sigterm-job"


def _wait_for(predicate, timeout: float = 30.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_deletes_the_resource_and_exits_130(tmp_path: Path, bucket: str, moto_endpoint: str,
                                                   signum: signal.Signals) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(make_model_archive(with_hyperparameters=True, weights_size=1000, small_files=1))
    with FakeKube() as kube:
        kube.statuses = [ack_reference.fixture("in_progress.yaml")["status"]]  # InProgress forever
        kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", namespace="pipelines")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dummy_training", "ack", "run", "--model", str(model),
             "--s3-prefix", f"s3://{bucket}/runs", "--role-arn", "arn:aws:iam::123456789012:role/r",
             "--image-uri", "dummy-training:test", "--endpoint-url", moto_endpoint, "--job-name", NAME,
             "--kubeconfig", str(kubeconfig), "--poll-interval", "0.05", "--max-poll-interval", "0.05",
             "--stop-wait-seconds", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        try:
            created = _wait_for(lambda: kube.created.is_set() and kube.methods().count("GET") >= 3
                                or proc.poll() is not None)
            assert created and proc.poll() is None, proc.communicate(timeout=5)
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        methods = kube.methods()
        deletes = [path for method, path, _ in kube.requests if method == "DELETE"]
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert deletes == [f"/apis/sagemaker.services.k8s.aws/v1alpha1/namespaces/pipelines/processingjobs/{NAME}"]
    assert methods.index("DELETE") > methods.index("POST")
    assert kube.objects == {}
    assert f"interrupted by {signum.name}" in err
    assert out == ""  # no model URI printed for an interrupted job
