"""`dummy-training sagemaker --dry-run` and what the launcher judges before any AWS call: the request printed as
JSON with no AWS call at all (no credentials, no endpoint, and a botocore hook failing any call), a local model
judged by the engine before staging, and the console URL logged only once a job exists."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from archives import make_model_archive
from fake_sagemaker import FakeSageMaker

from dummy_training import contract
from dummy_training.errors import EXIT_INVALID_INPUT, EXIT_NOT_FOUND, InputNotFoundError
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker.launcher import LaunchConfig

ROLE = "arn:aws:iam::123456789012:role/dummy-training"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0-root"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dummy_training", "sagemaker", *args], capture_output=True,
                          text=True, env=env if env is not None else dict(os.environ), timeout=120)


def _no_aws_env() -> dict[str, str]:
    """No credentials, no region, no endpoint: any AWS call would fail."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"AWS_EC2_METADATA_DISABLED": "true"}


def test_dry_run_prints_the_request_with_no_aws_call(tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(make_model_archive(weights_size=1000, small_files=1))
    res = _run("--model", str(model), "--hyperparameters-json", '{"epochs": 3}', "--s3-prefix", "s3://bkt/dt",
               "--role-arn", ROLE, "--image-uri", IMAGE, "--job-name", "my-job", "--environment",
               "SOURCE_DATE_EPOCH=0", "--dry-run", env=_no_aws_env())
    assert res.returncode == 0, res.stderr
    request = json.loads(res.stdout)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    hp_digest = hashlib.sha256(b'{\n  "epochs": 3\n}\n').hexdigest()
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert inputs == {"model": f"s3://bkt/dt/my-job/input/model/sha256-{digest}/model.tar.gz",
                      "config": f"s3://bkt/dt/my-job/input/config/sha256-{hp_digest}/hyperparameters.json"}
    assert request["ProcessingJobName"] == "my-job" and request["RoleArn"] == ROLE
    assert request["AppSpecification"]["ImageUri"] == IMAGE
    assert request["Environment"] == {"SOURCE_DATE_EPOCH": "0"}
    assert f"would stage model (local file) {model} -> s3://bkt/dt/my-job/input/model/sha256-{digest}" in res.stderr


def test_dry_run_is_the_request_a_launch_sends(s3, bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    """The dry run's request is the one CreateProcessingJob then receives; the dry run itself calls nothing (a
    botocore hook on every client fails any call)."""
    model = tmp_path / "model.tar.gz"
    model.write_bytes(make_model_archive(weights_size=1000, small_files=1))
    cfg = LaunchConfig(model=str(model), hyperparameters_json='{"a": 1}', role_arn=ROLE, image_uri=IMAGE,
                       s3_prefix=f"s3://{bucket}/dt", job_name_parts=("run-9", "task-9"), endpoint_url=moto_endpoint,
                       region="us-east-1", stream_logs=False)
    import botocore.session

    real = botocore.session.Session.create_client

    def no_calls(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        client = real(self, *args, **kwargs)
        client.meta.events.register("before-call", lambda **kw: pytest.fail(f"AWS call {kw['model'].name}"))
        return client

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session.Session, "create_client", no_calls)
        dry = sagemaker_launcher.dry_run(cfg)
    fake = FakeSageMaker(running_status="Completed")
    endpoint = fake.start()
    try:
        clients = sagemaker_launcher.make_clients(cfg)
        from dummy_training import aws

        clients.sagemaker = aws.client("sagemaker", region="us-east-1", endpoint_url=endpoint)
        sagemaker_launcher.launch(cfg, clients=clients, sleep=lambda _s: None)
    finally:
        fake.stop()
    (sent,) = [p for op, p in fake.calls if op == "CreateProcessingJob"]
    assert sent == json.loads(json.dumps(dry))
    assert s3.head_object(Bucket=bucket, Key=dry["ProcessingInputs"][0]["S3Input"]["S3Uri"].split("/", 3)[3])


def test_local_model_without_hyperparameters_is_judged_before_staging(tmp_path: Path) -> None:
    """No root hyperparameters.json and none given: exit 1 as the repack would, before any AWS call (there are
    no credentials); no console URL (no job exists). With its own hyperparameters.json the dry run goes on."""
    model = tmp_path / "model.tar.gz"
    model.write_bytes(make_model_archive(weights_size=1000, small_files=1))
    args = ["--model", str(model), "--s3-prefix", "s3://bkt/dt", "--role-arn", ROLE, "--image-uri", IMAGE,
            "--job-name", "judged"]
    for extra in ([], ["--dry-run"]):
        res = _run(*args, *extra, env=_no_aws_env())
        assert res.returncode == EXIT_NOT_FOUND, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("dummy-training: error:")]
        assert errors == [f"dummy-training: error: {model}: the archive has no root hyperparameters.json and no "
                          "hyperparameters were given (pass hyperparameters); nothing was staged and no job was "
                          "created"]
        assert "console.aws.amazon.com" not in res.stderr and "Traceback" not in res.stderr
    model.write_bytes(b"not an archive")
    res = _run(*args, env=_no_aws_env())
    assert res.returncode == EXIT_INVALID_INPUT and "not a gzip or tar archive" in res.stderr
    model.write_bytes(make_model_archive(with_hyperparameters=True, weights_size=1000, small_files=1))
    res = _run(*args, "--dry-run", env=_no_aws_env())
    assert res.returncode == 0, res.stderr
    assert contract.HYPERPARAMETERS.flag not in json.loads(res.stdout)["AppSpecification"]["ContainerArguments"]


def test_missing_s3_model_prints_no_console_url(s3, bucket: str, moto_endpoint: str) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint}
    res = _run("--model", f"s3://{bucket}/nope/model.tar.gz", "--s3-prefix", f"s3://{bucket}/dt", "--role-arn",
               ROLE, "--image-uri", IMAGE, "--job-name", "no-model", "--region", "us-east-1", env=env)
    assert res.returncode == EXIT_NOT_FOUND
    assert "no job was created" in res.stderr and "console.aws.amazon.com" not in res.stderr


def test_console_url_is_logged_once_the_job_exists(s3, bucket: str, moto_endpoint: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    fake = FakeSageMaker(running_status="Completed")
    endpoint = fake.start()
    order: list[str] = []
    try:
        cfg = LaunchConfig(model=f"s3://{bucket}/m/model.tar.gz", role_arn=ROLE, image_uri=IMAGE,
                           s3_prefix=f"s3://{bucket}/dt", job_name="url-job", endpoint_url=moto_endpoint,
                           region="us-east-1", stream_logs=False)
        clients = sagemaker_launcher.make_clients(cfg)
        from dummy_training import aws

        clients.sagemaker = aws.client("sagemaker", region="us-east-1", endpoint_url=endpoint)
        clients.sagemaker.meta.events.register("after-call.sagemaker.CreateProcessingJob",
                                               lambda **kw: order.append("created"))
        with caplog.at_level("INFO", logger="dummy_training.sagemaker.launcher"):
            caplog.handler.addFilter(lambda r: order.append(r.getMessage()) or True)
            sagemaker_launcher.launch(cfg, clients=clients, sleep=lambda _s: None)
    finally:
        fake.stop()
    urls = [i for i, m in enumerate(order) if "console.aws.amazon.com/sagemaker" in m]
    assert urls and urls[0] > order.index("created")


def test_judge_uses_the_engine(tmp_path: Path) -> None:
    from dummy_training.step.judge import require_own_hyperparameters

    model = tmp_path / "m.tar.gz"
    model.write_bytes(make_model_archive(with_hyperparameters=True, weights_size=1000, small_files=1))
    assert require_own_hyperparameters(model) == contract.DECISION_PRESERVED
    model.write_bytes(make_model_archive(weights_size=1000, small_files=1))
    with pytest.raises(InputNotFoundError, match="no root hyperparameters.json"):
        require_own_hyperparameters(model)
