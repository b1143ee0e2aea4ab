"""Job state sequences moto cannot produce, driven by botocore's Stubber on the SageMaker client (S3 is moto):
InProgress -> Failed, Stopped, ResourceInUse on create, a Completed job reused, failed attempts, timeout,
interruption. Also throttling, which needs real HTTP for botocore's retries: a fake endpoint on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from fake_sagemaker import FakeSageMaker

from dummy_training.errors import Interrupted, InvalidInputError, JobFailedError, JobStoppedError
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker import report, staging
from dummy_training.sagemaker.launcher import Clients, LaunchConfig
from dummy_training.sagemaker.report import JobSummary

ROLE = "arn:aws:iam::123456789012:role/dummy-training"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def stubbed(s3, bucket: str) -> Iterator[tuple[Stubber, Clients]]:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    sm = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sm) as stub:
        yield stub, Clients(sagemaker=sm, s3=s3, logs=None, region="us-east-1")
        stub.assert_no_pending_responses()


def _cfg(bucket: str, **kw: Any) -> LaunchConfig:
    base: dict[str, Any] = {"model": f"s3://{bucket}/m/model.tar.gz", "role_arn": ROLE, "image_uri": "img:1",
                            "s3_prefix": f"s3://{bucket}/runs", "job_name": "job-1", "stream_logs": False,
                            "poll_interval": 2.0, "max_poll_interval": 5.0, "stop_wait_seconds": 60}
    return LaunchConfig(**{**base, **kw})


def _request(name: str, bucket: str, **cfg: Any) -> dict[str, Any]:
    """The CreateProcessingJob request a launch of ``_cfg(bucket, **cfg)`` sends as job ``name``."""
    config = _cfg(bucket, **cfg)
    plan = staging.plan_inputs(model=config.model, hyperparameters=config.hyperparameters,
                               hyperparameters_json=config.hyperparameters_json,
                               staging_prefix=f"s3://{bucket}/runs/{name}")
    return sagemaker_launcher.request_for(config, plan)(name)


def _desc(name: str, status: str, bucket: str, *, cfg: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """DescribeProcessingJob of the job ``_cfg(bucket, **cfg)`` created as ``name``, as SageMaker answers it: the
    request's fields (tags are not described) with the ARN, status and times."""
    request = {k: v for k, v in _request(name, bucket, **(cfg or {})).items() if k != "Tags"}
    return {**request, "ProcessingJobArn": ARN + name, "ProcessingJobStatus": status,
            "CreationTime": dt.datetime(2026, 1, 1), **extra}


def _not_found(stub: Stubber, name: str) -> None:
    stub.add_client_error("describe_processing_job", service_error_code="ValidationException",
                          service_message=f"Could not find requested job with name {name}",
                          expected_params={"ProcessingJobName": name})


def _describe(stub: Stubber, desc: dict[str, Any]) -> None:
    stub.add_response("describe_processing_job", desc, {"ProcessingJobName": desc["ProcessingJobName"]})


def _create(stub: Stubber, name: str) -> None:
    stub.add_response("create_processing_job", {"ProcessingJobArn": ARN + name},
                      {"ProcessingJobName": name, "RoleArn": ROLE, "AppSpecification": ANY,
                       "ProcessingResources": ANY, "StoppingCondition": ANY, "ProcessingInputs": ANY,
                       "ProcessingOutputConfig": ANY})


def test_in_progress_then_failed_raises_with_failure_reason(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    t = FakeTime()
    _not_found(stub, "job-1")
    _create(stub, "job-1")
    for _ in range(4):
        _describe(stub, _desc("job-1", "InProgress", bucket))
    _describe(stub, _desc("job-1", "Failed", bucket, FailureReason="AlgorithmError: no hyperparameters.json"))
    with pytest.raises(JobFailedError, match="AlgorithmError: no hyperparameters.json"):
        sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=t.sleep, clock=t.clock)
    assert t.sleeps == [2.0, 3.0, 4.5, 5.0]  # backoff, capped


def test_failed_job_still_has_its_report(stubbed, bucket: str) -> None:
    """The JobSummary given to launch is filled as the job goes, so a failed job's report says what happened."""
    stub, clients = stubbed
    t = FakeTime()
    _not_found(stub, "job-1")
    _create(stub, "job-1")
    _describe(stub, _desc("job-1", "InProgress", bucket))
    times = {"ProcessingStartTime": dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC),
             "ProcessingEndTime": dt.datetime(2026, 1, 1, 0, 2, 30, tzinfo=dt.UTC)}
    _describe(stub, _desc("job-1", "Failed", bucket, FailureReason="AlgorithmError: <no> | hyperparameters", **times))
    job = JobSummary(backend=sagemaker_launcher.BACKEND)
    with pytest.raises(JobFailedError) as info:
        sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=t.sleep, clock=t.clock, job=job)
    assert (job.job_name, job.job_arn, job.status, job.region) == ("job-1", ARN + "job-1", "Failed", "us-east-1")
    assert job.billable_seconds == 90.0 and job.wait_seconds == 2.0
    job.error = str(info.value)
    text = report.render(job)
    assert text.startswith("# dummy-training on SageMaker: Failed")
    assert "| Failure reason | AlgorithmError: &lt;no&gt; \\| hyperparameters |" in text
    assert "| Billable | ≈ 90 instance-seconds (90 s × 1 instance) |" in text
    assert f"({report.console_url('us-east-1', 'job-1')})" in text
    assert f"({report.logs_console_url('us-east-1', 'job-1')})" in text
    assert report.metrics(job) == {"seconds": 2.0, "reused": 0.0, "instance_count": 1.0, "job_seconds": 90.0,
                                   "billable_seconds": 90.0}


def test_stopped_ends_at_once_without_looping(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    t = FakeTime()
    _not_found(stub, "job-1")
    _create(stub, "job-1")
    _describe(stub, _desc("job-1", "Stopped", bucket, ExitMessage="stopped by admin"))
    with pytest.raises(JobStoppedError, match="stopped by admin"):
        sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=t.sleep, clock=t.clock)
    assert t.sleeps == []


def test_completed_job_with_the_same_name_is_reused(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    _describe(stub, _desc("job-1", "Completed", bucket))
    result = sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=FakeTime().sleep)
    assert result.reused and result.job_arn == ARN + "job-1"
    assert result.model_s3_uri == f"s3://{bucket}/runs/job-1/output/model.tar.gz"
    assert result.job is not None and result.job.reused and result.job.status == "Completed"
    assert "| Reused | yes: it had already completed |" in report.render(result.job)


@pytest.mark.parametrize(("change", "field"), [
    ({"image_uri": "img:2"}, "AppSpecification.ImageUri: img:1 there, img:2 here"),
    ({"hyperparameters_json": '{"epochs": 5}'}, "AppSpecification.ContainerArguments"),
    ({"environment": {"SOURCE_DATE_EPOCH": "1"}}, "Environment.SOURCE_DATE_EPOCH differs"),
    ({"instance_type": "ml.c5.xlarge"}, "ProcessingResources.ClusterConfig.InstanceType: ml.m5.large there"),
    ({"model": "s3://{bucket}/other/model.tar.gz"}, "ProcessingInputs[model].S3Input.S3Uri"),
    ({"role_arn": "arn:aws:iam::123456789012:role/other"}, "RoleArn"),
    ({"max_runtime_seconds": 60}, "StoppingCondition.MaxRuntimeInSeconds"),
    ({"enable_network_isolation": True}, "NetworkConfig.EnableNetworkIsolation: (none) there, True here"),
])
@pytest.mark.parametrize("status", ["Completed", "InProgress", "Failed"])
def test_same_name_with_another_request_is_refused(stubbed, bucket: str, change: dict[str, Any], field: str,
                                                   status: str) -> None:
    """A used job name with other inputs or settings: exit 2 naming the job and the first field that differs;
    nothing staged, created or delivered (the Stubber fails any call not scripted: only the describe is)."""
    stub, clients = stubbed
    _describe(stub, _desc("job-1", status, bucket))
    change = {k: v.replace("{bucket}", bucket) if isinstance(v, str) else v for k, v in change.items()}
    with pytest.raises(InvalidInputError) as info:
        sagemaker_launcher.launch(_cfg(bucket, **change), clients=clients, sleep=FakeTime().sleep)
    message = str(info.value)
    assert message.startswith("processing job job-1 already exists with another request (")
    assert field in message and "\n" not in message
    assert clients.s3.list_objects_v2(Bucket=bucket, Prefix="runs/").get("KeyCount", 0) == 0


def test_same_request_up_to_what_sagemaker_adds_is_the_same_job(stubbed, bucket: str) -> None:
    """Defaults SageMaker may add or leave out, and the order of inputs and VPC lists, are no difference; tags are
    not described, so they are not compared."""
    stub, clients = stubbed
    vpc = {"subnets": ["subnet-1", "subnet-2"], "security_group_ids": ["sg-1"]}
    desc = _desc("job-1", "Completed", bucket, cfg={**vpc, "hyperparameters_json": '{"a": 1}'})
    desc["NetworkConfig"]["VpcConfig"]["Subnets"].reverse()
    desc["NetworkConfig"]["EnableNetworkIsolation"] = False
    desc["ProcessingInputs"].reverse()
    for item in desc["ProcessingInputs"]:
        item["AppManaged"] = False
        del item["S3Input"]["S3CompressionType"]
    _describe(stub, desc)
    result = sagemaker_launcher.launch(_cfg(bucket, **vpc, hyperparameters_json='{"a": 1}', tags={"t": "v"}),
                                       clients=clients, sleep=FakeTime().sleep)
    assert result.reused


def test_derived_name_retry_with_the_same_request_re_attaches(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    base = sagemaker_launcher.default_job_name("run-1", "task-1")
    cfg = {"job_name": None, "job_name_parts": ("run-1", "task-1")}
    _describe(stub, _desc(base, "Completed", bucket, cfg=cfg))
    result = sagemaker_launcher.launch(_cfg(bucket, **cfg), clients=clients, sleep=FakeTime().sleep)
    assert result.reused and result.job_name == base


def test_in_progress_job_with_the_same_name_is_waited_on(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    t = FakeTime()
    _describe(stub, _desc("job-1", "InProgress", bucket))
    _describe(stub, _desc("job-1", "InProgress", bucket))
    _describe(stub, _desc("job-1", "Completed", bucket))
    result = sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=t.sleep, clock=t.clock)
    assert not result.reused and result.status == "Completed"


def test_resource_in_use_on_create_re_attaches(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    t = FakeTime()
    _not_found(stub, "job-1")
    stub.add_client_error("create_processing_job", service_error_code="ResourceInUse",
                          service_message="Job job-1 already exists")
    _describe(stub, _desc("job-1", "InProgress", bucket))
    _describe(stub, _desc("job-1", "Completed", bucket))
    result = sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=t.sleep, clock=t.clock)
    assert result.job_name == "job-1" and result.status == "Completed"


def test_explicit_name_of_a_failed_job_asks_for_a_new_name(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    _describe(stub, _desc("job-1", "Failed", bucket, FailureReason="boom"))
    with pytest.raises(JobFailedError, match="pass a new job_name"):
        sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=FakeTime().sleep)


def test_derived_name_of_a_failed_job_runs_the_next_attempt(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    t = FakeTime()
    base = sagemaker_launcher.default_job_name("run-1", "task-1")
    _describe(stub, _desc(base, "Failed", bucket, FailureReason="boom"))
    _describe(stub, _desc(f"{base}-a2", "Stopped", bucket))
    _not_found(stub, f"{base}-a3")
    _create(stub, f"{base}-a3")
    _describe(stub, _desc(f"{base}-a3", "Completed", bucket))
    cfg = _cfg(bucket, job_name=None, job_name_parts=("run-1", "task-1"))
    assert _request(f"{base}-a3", bucket) == _request(f"{base}-a3", bucket, job_name=None,
                                                      job_name_parts=("run-1", "task-1"))
    result = sagemaker_launcher.launch(cfg, clients=clients, sleep=t.sleep, clock=t.clock)
    assert result.job_name == f"{base}-a3"


def test_timeout_stops_the_job(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    t = FakeTime()
    _not_found(stub, "job-1")
    _create(stub, "job-1")
    for _ in range(4):  # t = 0, 2, 5, 9.5 ; deadline 10
        _describe(stub, _desc("job-1", "InProgress", bucket))
    _describe(stub, _desc("job-1", "InProgress", bucket))  # t = 10: deadline reached
    stub.add_response("stop_processing_job", {}, {"ProcessingJobName": "job-1"})
    _describe(stub, _desc("job-1", "Stopping", bucket))
    with pytest.raises(JobStoppedError, match="did not finish within 10 s"):
        sagemaker_launcher.launch(_cfg(bucket, timeout_seconds=10), clients=clients, sleep=t.sleep, clock=t.clock)


def test_interrupt_stops_the_job_and_waits_for_stopping(stubbed, bucket: str) -> None:
    stub, clients = stubbed
    t = FakeTime()
    _not_found(stub, "job-1")
    _create(stub, "job-1")
    _describe(stub, _desc("job-1", "InProgress", bucket))
    stub.add_response("stop_processing_job", {}, {"ProcessingJobName": "job-1"})
    _describe(stub, _desc("job-1", "InProgress", bucket))
    _describe(stub, _desc("job-1", "Stopping", bucket))
    calls = {"n": 0}

    def sleep(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Interrupted("interrupted by SIGTERM")
        t.sleep(seconds)

    with pytest.raises(Interrupted):
        sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=sleep, clock=t.clock)


def test_throttling_is_retried_by_botocore(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    fake = FakeSageMaker(running_status="Completed")
    endpoint = fake.start()
    try:
        from dummy_training import aws

        sm = aws.client("sagemaker", region="us-east-1", endpoint_url=endpoint)
        clients = Clients(sagemaker=sm, s3=s3, logs=None, region="us-east-1")
        fake.jobs["job-1"] = {**_desc("job-1", "Completed", bucket), "CreationTime": 0}
        fake.throttle_describes = 1
        result = sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=FakeTime().sleep)
    finally:
        fake.stop()
    assert result.reused
    assert fake.names() == ["DescribeProcessingJob"] * 2  # a throttled answer, then the real one


def test_concurrent_twin_with_another_request_is_refused(stubbed, bucket: str) -> None:
    """ResourceInUse on create: the twin is described and compared like any existing job."""
    stub, clients = stubbed
    _not_found(stub, "job-1")
    stub.add_client_error("create_processing_job", service_error_code="ResourceInUse",
                          service_message="Job job-1 already exists")
    _describe(stub, _desc("job-1", "InProgress", bucket, cfg={"image_uri": "img:other"}))
    with pytest.raises(InvalidInputError, match="job-1 already exists with another request .*ImageUri: img:other"):
        sagemaker_launcher.launch(_cfg(bucket), clients=clients, sleep=FakeTime().sleep)
