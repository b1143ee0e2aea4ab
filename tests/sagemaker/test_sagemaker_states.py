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

from dummy_training.errors import Interrupted, JobFailedError, JobStoppedError
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker import report
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


def _desc(name: str, status: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "ProcessingJobName": name, "ProcessingJobArn": ARN + name, "ProcessingJobStatus": status,
        "CreationTime": dt.datetime(2026, 1, 1), "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": "img:1"},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 30}},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "model", "S3Output": {
            "S3Uri": f"s3://{bucket}/runs/{name}/output", "LocalPath": "/opt/ml/processing/output/model",
            "S3UploadMode": "EndOfJob"}}]},
        **extra,
    }


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
