"""The SageMaker launcher against moto's server (real HTTP): staging, the exact CreateProcessingJob request as
moto recorded it, outputs, re-use of a completed job, CloudWatch log streaming, errors before any job."""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from pathlib import Path

import boto3
import pytest
from archives import make_model_archive
from fake_sagemaker import FakeSageMaker

from dummy_training import aws, contract
from dummy_training.errors import InputNotFoundError, InvalidInputError, RuntimeIOError
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker import processing_job
from dummy_training.sagemaker.launcher import LaunchConfig

ROLE = "arn:aws:iam::123456789012:role/dummy-training"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0"


def _no_sleep(_s: float) -> None:
    raise AssertionError("moto completes jobs at once: the launcher must not sleep")


def _config(bucket: str, moto_endpoint: str, **kw) -> LaunchConfig:  # noqa: ANN003
    base = {"model": f"s3://{bucket}/models/model.tar.gz", "role_arn": ROLE, "image_uri": IMAGE,
            "s3_prefix": f"s3://{bucket}/runs", "region": "us-east-1", "endpoint_url": moto_endpoint,
            "job_name": f"dt-{uuid.uuid4().hex[:12]}"}
    return LaunchConfig(**{**base, **kw})


@pytest.fixture
def sm(moto_endpoint: str):  # noqa: ANN201
    return boto3.client("sagemaker", endpoint_url=moto_endpoint, region_name="us-east-1")


def test_staged_request_as_recorded_by_sagemaker(s3, sm, bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    model_bytes = make_model_archive(weights_size=1000, small_files=1)  # a real one: the launcher judges it
    (tmp_path / contract.MODEL_FILENAME).write_bytes(model_bytes)
    cfg = _config(bucket, moto_endpoint, model=str(tmp_path), hyperparameters_json='{"epochs": 2}',
                  instance_type="ml.c5.xlarge", volume_size_gb=50, max_runtime_seconds=600,
                  volume_kms_key_id="vol-key", output_kms_key_id="out-key",
                  subnets=["subnet-1"], security_group_ids=["sg-1"],
                  enable_inter_container_traffic_encryption=True,
                  environment={"LOG_LEVEL": "debug"}, tags={"team": "ml"})
    clients = sagemaker_launcher.make_clients(cfg)
    sent: list[dict] = []
    clients.sagemaker.meta.events.register("provide-client-params.sagemaker.CreateProcessingJob",
                                           lambda params, **kw: sent.append(dict(params)))
    result = sagemaker_launcher.launch(cfg, clients=clients, sleep=_no_sleep)
    name = cfg.job_name
    staged = f"s3://{bucket}/runs/{name}/input"
    model_key = f"runs/{name}/input/model/sha256-{hashlib.sha256(model_bytes).hexdigest()}/model.tar.gz"
    hp_digest = hashlib.sha256(b'{\n  "epochs": 2\n}\n').hexdigest()
    expected_spec = processing_job.ProcessingJobSpec(
        job_name=name, role_arn=ROLE, image_uri=IMAGE,
        model_s3_uri=f"s3://{bucket}/{model_key}",
        hyperparameters_s3_uri=f"{staged}/config/sha256-{hp_digest}/hyperparameters.json",
        output_s3_uri=f"s3://{bucket}/runs/{name}/output", report_s3_uri=f"s3://{bucket}/runs/{name}/report",
        instance_type="ml.c5.xlarge", volume_size_gb=50, max_runtime_seconds=600,
        volume_kms_key_id="vol-key", output_kms_key_id="out-key", subnets=["subnet-1"], security_group_ids=["sg-1"],
        enable_inter_container_traffic_encryption=True, environment={"LOG_LEVEL": "debug"}, tags={"team": "ml"})
    expected = processing_job.build_create_processing_job_request(expected_spec)
    assert sent == [expected]  # the exact request, once
    desc = sm.describe_processing_job(ProcessingJobName=name)
    for key in ("RoleArn", "AppSpecification", "ProcessingInputs", "ProcessingOutputConfig", "StoppingCondition",
                "NetworkConfig"):  # what moto records of it
        assert desc[key] == expected[key], key
    assert desc["AppSpecification"]["ContainerEntrypoint"] == list(contract.CONTAINER_ENTRYPOINT)
    # the staged objects are where the request points
    assert s3.get_object(Bucket=bucket, Key=model_key)["Body"].read() == model_bytes
    assert s3.head_object(Bucket=bucket, Key=f"runs/{name}/input/config/sha256-{hp_digest}/hyperparameters.json")
    assert result.job_name == name
    assert result.job_arn == desc["ProcessingJobArn"]
    assert result.model_s3_uri == f"s3://{bucket}/runs/{name}/output/model.tar.gz"
    assert result.model_s3_uri == processing_job.output_model_uri(expected_spec)
    assert result.metadata() == {"model_s3_uri": result.model_s3_uri, "job_name": name, "job_arn": result.job_arn}
    assert not result.reused


def test_s3_direct_request_has_no_inputs_and_uses_the_model_in_place(s3, sm, bucket: str,
                                                                     moto_endpoint: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/bert.tar.gz", Body=b"m")
    cfg = _config(bucket, moto_endpoint, model=f"s3://{bucket}/models/bert.tar.gz", s3_direct=True,
                  s3_output_prefix=f"s3://{bucket}/out")
    result = sagemaker_launcher.launch(cfg, sleep=_no_sleep)
    desc = sm.describe_processing_job(ProcessingJobName=cfg.job_name)
    assert "ProcessingInputs" not in desc or not desc["ProcessingInputs"]
    args = desc["AppSpecification"]["ContainerArguments"]
    assert args == [contract.MODEL.flag, f"s3://{bucket}/models/bert.tar.gz",
                    contract.OUTPUT_URI.flag, f"s3://{bucket}/out/{cfg.job_name}/output",
                    "--report", f"s3://{bucket}/out/{cfg.job_name}/report/report.md",
                    "--result-json", f"s3://{bucket}/out/{cfg.job_name}/report/result.json"]
    assert result.model_s3_uri == f"s3://{bucket}/out/{cfg.job_name}/output/model.tar.gz"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="runs/").get("KeyCount", 0) == 0  # nothing staged


def test_completed_job_is_reused_and_its_model_downloaded(s3, bucket: str, moto_endpoint: str,
                                                          tmp_path: Path) -> None:
    """Run twice with the same request: the second run creates nothing and delivers the first job's model.
    (SageMaker: the fake endpoint, which describes a job as SageMaker does; moto's description lacks the
    required ProcessingResources, so no request would ever compare equal to it.)"""
    s3.put_object(Bucket=bucket, Key="models/model.tar.gz", Body=b"m")
    fake = FakeSageMaker(running_status="Completed")
    endpoint = fake.start()
    try:
        cfg = _config(bucket, moto_endpoint)
        first = sagemaker_launcher.launch(cfg, clients=_clients(cfg, endpoint), sleep=_no_sleep)
        s3.put_object(Bucket=bucket, Key=first.model_s3_uri.split("/", 3)[3], Body=b"repacked")
        cfg.model_output_dir = str(tmp_path / "out")
        again = sagemaker_launcher.launch(cfg, clients=_clients(cfg, endpoint), sleep=_no_sleep)
    finally:
        fake.stop()
    assert fake.names().count("CreateProcessingJob") == 1
    assert again.reused and again.job_arn == first.job_arn and again.model_s3_uri == first.model_s3_uri
    assert Path(again.local_model_path or "").read_bytes() == b"repacked"
    assert again.local_model_path == str(tmp_path / "out" / contract.MODEL_FILENAME)
    assert not list((tmp_path / "out").glob(".*part"))


def _clients(cfg: LaunchConfig, sagemaker_endpoint: str) -> sagemaker_launcher.Clients:
    """moto for S3 and logs, ``sagemaker_endpoint`` for SageMaker."""
    clients = sagemaker_launcher.make_clients(cfg)
    clients.sagemaker = aws.client("sagemaker", region="us-east-1", endpoint_url=sagemaker_endpoint)
    return clients


def test_derived_job_name_is_deterministic_and_valid(s3, sm, bucket: str, moto_endpoint: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/model.tar.gz", Body=b"m")
    run_id = uuid.uuid4().hex
    cfg = _config(bucket, moto_endpoint, job_name=None, job_name_parts=(run_id, "task-abc" * 10))
    result = sagemaker_launcher.launch(cfg, sleep=_no_sleep)
    assert result.job_name == sagemaker_launcher.default_job_name(run_id, "task-abc" * 10)
    assert processing_job.JOB_NAME_RE.match(result.job_name)
    assert len(result.job_name) <= processing_job.MAX_JOB_NAME - 3


def test_missing_s3_model_creates_no_job(sm, bucket: str, moto_endpoint: str) -> None:
    cfg = _config(bucket, moto_endpoint, model=f"s3://{bucket}/nope/model.tar.gz")
    with pytest.raises(InputNotFoundError, match=f"s3://{bucket}/nope/model.tar.gz"):
        sagemaker_launcher.launch(cfg, sleep=_no_sleep)
    assert sagemaker_launcher.describe(sm, cfg.job_name) is None


@pytest.mark.parametrize(("override", "needle"), [
    ({"role_arn": "my-role"}, "invalid role ARN"),
    ({"s3_prefix": None}, "S3 prefix is required"),
    ({"job_name": "bad_name!"}, "invalid job name"),
    ({"s3_direct": True, "enable_network_isolation": True}, "network isolation"),
])
def test_invalid_config_fails_before_any_call(bucket: str, moto_endpoint: str, override: dict, needle: str) -> None:
    cfg = _config(bucket, moto_endpoint, **override)
    with pytest.raises(InvalidInputError, match=needle):
        sagemaker_launcher.launch(cfg, clients=sagemaker_launcher.Clients(None, None, None, "us-east-1"),
                                  sleep=_no_sleep)


def test_no_region_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, bucket: str, moto_endpoint: str) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(RuntimeIOError, match="no AWS region"):
        sagemaker_launcher.launch(_config(bucket, moto_endpoint, region=None), sleep=_no_sleep)


def test_log_streaming_pages_every_stream_of_the_job_only(moto_endpoint: str) -> None:
    logs = boto3.client("logs", endpoint_url=moto_endpoint, region_name="us-east-1")
    group = contract.PROCESSING_JOB_LOG_GROUP
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    job = f"dt-logs-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    for stream, lines in ((f"{job}/algo-1-1", ["a1", "a2", "a3"]), (f"{job}/algo-2-1", ["b1"]),
                          (f"{job}-a2/algo-1-1", ["other job"])):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)])
    seen: list[str] = []
    streamer = sagemaker_launcher.LogStreamer(logs, job, emit=seen.append)
    assert streamer.poll() == 4
    assert seen == ["[algo-1-1] a1", "[algo-1-1] a2", "[algo-1-1] a3", "[algo-2-1] b1"]
    assert streamer.poll() == 0  # nothing new: nothing repeated
    logs.put_log_events(logGroupName=group, logStreamName=f"{job}/algo-1-1",
                        logEvents=[{"timestamp": now + 10, "message": "a4"}])
    assert streamer.poll() == 1
    assert seen[-1] == "[algo-1-1] a4"


def test_log_streaming_tolerates_a_missing_log_group(moto_endpoint: str) -> None:
    logs = boto3.client("logs", endpoint_url=moto_endpoint, region_name="eu-west-1")  # no group in this region
    streamer = sagemaker_launcher.LogStreamer(logs, "dt-nothing", emit=lambda line: None)
    assert streamer.poll() == 0
    assert streamer.enabled
