"""Every local model is judged by the engine before anything is staged or created (issue 25): a hostile archive
given hyperparameters is refused by `sagemaker` (launch and --dry-run), `ack run` and `ack manifest --stage` with
the repack's own line and exit 2, and the moto server then holds no object and no processing job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from archives import HOSTILE_ARCHIVES, make_model_archive

from dummy_training.errors import EXIT_INVALID_INPUT

ROLE = "arn:aws:iam::123456789012:role/dummy-training"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0-root"

#: The launcher commands that stage a local model, each with what it needs beyond the common flags.
COMMANDS = {
    "sagemaker": ["sagemaker"],
    "sagemaker-dry-run": ["sagemaker", "--dry-run"],
    "ack-run": ["ack", "run", "--namespace", "ns"],
    "ack-manifest-stage": ["ack", "manifest", "--stage", "--namespace", "ns"],
}


def _job_name(tmp_path: Path) -> str:
    """A name no other test on the session's moto server uses."""
    return "judged-" + "".join(c for c in tmp_path.name.lower() if c.isalnum())[-40:]


def _run(command: list[str], model: Path, bucket: str, endpoint: str, tmp_path: Path, *hp: str
         ) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    return subprocess.run([sys.executable, "-m", "dummy_training", *command, "--model", str(model), *hp,
                           "--s3-prefix", f"s3://{bucket}/dt", "--role-arn", ROLE, "--image-uri", IMAGE,
                           "--job-name", _job_name(tmp_path), "--region", "us-east-1"],
                          capture_output=True, text=True, env=env, timeout=120)


def _nothing_created(s3, bucket: str, endpoint: str, tmp_path: Path) -> None:  # noqa: ANN001
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    sm = boto3.client("sagemaker", endpoint_url=endpoint, region_name="us-east-1")
    assert sm.list_processing_jobs(NameContains=_job_name(tmp_path))["ProcessingJobSummaries"] == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("hostile", ["dotdot-path", "symlink-escapes", "char-device"])
def test_a_hostile_local_model_given_hyperparameters_stages_nothing(
        command: str, hostile: str, s3, bucket: str, moto_endpoint: str, tmp_path: Path) -> None:  # noqa: ANN001
    model = tmp_path / "model.tar.gz"
    model.write_bytes(HOSTILE_ARCHIVES[hostile]())
    res = _run(COMMANDS[command], model, bucket, moto_endpoint, tmp_path, "--hyperparameters-json", '{"a": 1}')
    assert res.returncode == EXIT_INVALID_INPUT, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("dummy-training: error:")]
    assert len(errors) == 1, res.stderr
    assert errors[0].startswith(f"dummy-training: error: {model}: invalid archive member")
    assert errors[0].endswith("nothing was staged and no job was created")
    assert "Traceback" not in res.stderr and res.stdout == ""
    _nothing_created(s3, bucket, moto_endpoint, tmp_path)


def test_hyperparameters_given_as_a_file_are_no_way_around_it(s3, bucket: str, moto_endpoint: str,  # noqa: ANN001
                                                             tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(HOSTILE_ARCHIVES["absolute-path"]())
    hp = tmp_path / "hp.json"
    hp.write_text('{"a": 1}')
    res = _run(COMMANDS["sagemaker"], model, bucket, moto_endpoint, tmp_path, "--hyperparameters", str(hp))
    assert res.returncode == EXIT_INVALID_INPUT and "absolute path" in res.stderr, res.stderr
    _nothing_created(s3, bucket, moto_endpoint, tmp_path)


def test_a_sound_model_given_hyperparameters_is_judged_and_goes_on(bucket: str, moto_endpoint: str,
                                                                   tmp_path: Path) -> None:
    """The judge does not stand in the way of a valid model: the dry run prints the request."""
    model = tmp_path / "model.tar.gz"
    model.write_bytes(make_model_archive(weights_size=1000, small_files=1))
    res = _run(COMMANDS["sagemaker-dry-run"], model, bucket, moto_endpoint, tmp_path,
               "--hyperparameters-json", '{"a": 1}')
    assert res.returncode == 0, res.stderr
    assert f'"ProcessingJobName": "{_job_name(tmp_path)}"' in res.stdout
