"""`dummy-training sagemaker --model-output-dir` when the download of the job's model fails: the object is gone,
the connection is cut, SIGTERM arrives mid-body, the target is in the way. Each is one line and its exit code, and
the output directory holds nothing afterwards: no model.tar.gz, no partial ``.model.tar.gz.part``.

Real processes and real HTTP: the CLI in a subprocess, S3 on the moto server (through ``s3_faults.FaultyProxy``
for the cut and the slow body), SageMaker on ``fake_sagemaker.FakeSageMaker`` (the job Completed at once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_sagemaker import FakeSageMaker
from s3_faults import FaultyProxy

from dummy_training import contract
from dummy_training.errors import EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_RUNTIME

ROLE = "arn:aws:iam::123456789012:role/dummy-training"
JOB = "download-job"
OUTPUT_KEY = f"runs/{JOB}/output/{contract.MODEL_FILENAME}"


@pytest.fixture
def sagemaker_endpoint() -> str:
    fake = FakeSageMaker(running_status="Completed")  # the job has run: only the download is left
    endpoint = fake.start()
    yield endpoint
    fake.stop()


def _cmd(bucket: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "dummy_training", "sagemaker", "--model", f"s3://{bucket}/m/model.tar.gz",
            "--s3-prefix", f"s3://{bucket}/runs", "--role-arn", ROLE, "--image-uri", "img:1", "--job-name", JOB,
            "--poll-interval", "0.05", "--max-poll-interval", "0.1", "--timeout-seconds", "10", "--no-logs",
            "--model-output-dir", str(out)]


def _env(s3_endpoint: str, sagemaker_endpoint: str) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_endpoint}


def _run(bucket: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(bucket, out), env=env, capture_output=True, text=True, timeout=60)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("dummy-training: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def _left_in(out: Path) -> list[str]:
    """Every file and directory under ``out`` (hidden ones too)."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


def test_a_model_object_gone_is_exit_1_and_leaves_nothing(s3, bucket: str, moto_endpoint: str,
                                                          sagemaker_endpoint: str, tmp_path: Path) -> None:
    """The job completed but its model.tar.gz is not there (deleted, a lifecycle rule): S3 answers 404."""
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    out = tmp_path / "out"
    res = _run(bucket, out, _env(moto_endpoint, sagemaker_endpoint))
    assert res.returncode == EXIT_NOT_FOUND, res.stderr
    line = _one_error_line(res.stderr)
    assert line.startswith(f"dummy-training: error: download s3://{bucket}/{OUTPUT_KEY}: not found"), line
    assert res.stdout == ""  # no model URI printed
    assert _left_in(out) == []


def test_a_cut_download_is_exit_3_and_leaves_nothing(s3, bucket: str, moto_endpoint: str, sagemaker_endpoint: str,
                                                    tmp_path: Path) -> None:
    """Every GET of the model is cut half-way: boto3 retries, gives up, and the half-written file must go."""
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    s3.put_object(Bucket=bucket, Key=OUTPUT_KEY, Body=os.urandom(1 << 20))
    out = tmp_path / "out"
    with FaultyProxy(moto_endpoint, cut_every=1, cut_key=OUTPUT_KEY) as proxy:
        res = _run(bucket, out, _env(proxy.url, sagemaker_endpoint))
    assert proxy.cuts >= 2  # the first cut and at least one retry
    assert res.returncode == EXIT_RUNTIME, res.stderr
    line = _one_error_line(res.stderr)
    assert line.startswith(f"dummy-training: error: download s3://{bucket}/{OUTPUT_KEY}: "), line
    assert "gave up" in line, line
    assert res.stdout == ""
    assert _left_in(out) == []


def test_sigterm_mid_download_exits_130_and_leaves_nothing(s3, bucket: str, moto_endpoint: str,
                                                           sagemaker_endpoint: str, tmp_path: Path) -> None:
    """A cancelled run while the model's body is still arriving (64 KiB every 50 ms: 8 MiB would take 6 s)."""
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    s3.put_object(Bucket=bucket, Key=OUTPUT_KEY, Body=os.urandom(8 << 20))
    out = tmp_path / "out"
    with FaultyProxy(moto_endpoint, cut_key=OUTPUT_KEY, trickle=0.05) as proxy:
        proc = subprocess.Popen(_cmd(bucket, out), env=_env(proxy.url, sagemaker_endpoint), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not (proxy.trickled >= 256 << 10 and (out / f".{contract.MODEL_FILENAME}.part").exists()):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the download never started"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proxy.trickled < 8 << 20  # it was mid-body
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert _one_error_line(stderr) == "dummy-training: error: interrupted by SIGTERM"
    assert stdout == ""
    assert _left_in(out) == []


def test_a_directory_in_the_models_place_is_exit_3_and_leaves_no_part(s3, bucket: str, moto_endpoint: str,
                                                                      sagemaker_endpoint: str, tmp_path: Path) -> None:
    """The download itself succeeds; the rename onto ``<dir>/model.tar.gz`` fails (a directory is there)."""
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    s3.put_object(Bucket=bucket, Key=OUTPUT_KEY, Body=b"repacked")
    out = tmp_path / "out"
    (out / contract.MODEL_FILENAME / "kept").mkdir(parents=True)
    res = _run(bucket, out, _env(moto_endpoint, sagemaker_endpoint))
    assert res.returncode == EXIT_RUNTIME, res.stderr
    assert _one_error_line(res.stderr).startswith(
        f"dummy-training: error: cannot write {out / contract.MODEL_FILENAME}: "), res.stderr
    assert _left_in(out) == [contract.MODEL_FILENAME, f"{contract.MODEL_FILENAME}/kept"]  # as it was, no .part
