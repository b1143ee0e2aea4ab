"""The job's own report: the processing job runs `dummy-training repack --report ... --result-json ...` into its
report channel (``<base>/<job>/report/``, beside the output prefix); the launcher reads both back and its report
shows the job's repack (decision, inputs, members) below the job, its metrics the repack's figures. The job is
played on this machine from the recorded request (``fake_sagemaker.PlaySageMaker``), S3 is moto."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from fake_sagemaker import FakeSageMaker, PlaySageMaker
from s3_helpers import deny_s3

from dummy_training import aws, contract
from dummy_training.errors import JobFailedError
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker import report
from dummy_training.sagemaker.launcher import LaunchConfig
from dummy_training.sagemaker.report import JobSummary

ROLE = "arn:aws:iam::123456789012:role/dummy-training"


def _model(*, with_hyperparameters: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = [("weights.bin", os.urandom(4096)), ("config.json", b'{"hidden": 8}')]
        if with_hyperparameters:
            members.append((contract.HYPERPARAMETERS_FILENAME, b'{"own": true}'))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _config(bucket: str, moto_endpoint: str, **kw: Any) -> LaunchConfig:
    base: dict[str, Any] = {"model": f"s3://{bucket}/models/model.tar.gz", "role_arn": ROLE, "image_uri": "img:1",
                            "s3_prefix": f"s3://{bucket}/runs", "region": "us-east-1", "endpoint_url": moto_endpoint,
                            "job_name": f"jr-{uuid.uuid4().hex[:10]}", "stream_logs": False}
    return LaunchConfig(**{**base, **kw})


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


@pytest.mark.parametrize("s3_direct", [False, True], ids=["staged", "s3_direct"])
def test_the_launchers_report_shows_the_jobs_repack(s3, bucket: str, moto_endpoint: str, tmp_path: Path,
                                                    s3_direct: bool) -> None:
    """Staged: the archive has no hyperparameters.json (injected); s3_direct: it has one (preserved)."""
    model = _model(with_hyperparameters=s3_direct)
    s3.put_object(Bucket=bucket, Key="models/model.tar.gz", Body=model)
    cfg = _config(bucket, moto_endpoint, hyperparameters_json='{"epochs": 7}', s3_direct=s3_direct)
    clients = sagemaker_launcher.make_clients(cfg)
    play = PlaySageMaker(moto_endpoint, tmp_path / "opt-ml")
    clients.sagemaker.meta.events.register("provide-client-params.sagemaker.CreateProcessingJob", play)

    result = sagemaker_launcher.launch(cfg, clients=clients, sleep=lambda s: None)

    name = cfg.job_name
    assert len(play.ran) == 1
    # the model's prefix holds only the model; the job's report and result are beside it
    assert _keys(s3, bucket, f"runs/{name}/output/") == [f"runs/{name}/output/{contract.MODEL_FILENAME}"]
    assert _keys(s3, bucket, f"runs/{name}/report/") == [f"runs/{name}/report/{contract.REPORT_FILENAME}",
                                                          f"runs/{name}/report/{contract.RESULT_FILENAME}"]
    job = result.job
    decision = contract.DECISION_PRESERVED if s3_direct else contract.DECISION_INJECTED
    assert job.repack_result["decision"] == decision
    assert job.repack_result["member_count"] == 3  # the output's: two kept (+ the injected one when staged)
    assert job.repack_report_uri == f"s3://{bucket}/runs/{name}/report/{contract.REPORT_FILENAME}"
    text = report.render(job)
    assert text.startswith("# dummy-training on SageMaker: Completed")
    assert f"The job's repack: **{decision}** (its own report is below)." in text
    # the job's own report, nested one heading level below the launcher's
    title = "archive preserved" if s3_direct else "hyperparameters.json injected"
    assert f"\n## dummy-training repack: {title}\n" in text
    assert f"**Decision: {decision}.**" in text
    assert "\n### Inputs\n" in text and "\n### Members (" in text and "\n# dummy-training repack" not in text
    assert "| 1 | weights.bin | file | 4.1 KB (4,096 bytes) |" in text
    assert "| 2 | config.json | file | 13 bytes |" in text
    if s3_direct:
        assert "| 3 | hyperparameters.json | file | 13 bytes |" in text
        assert "The given hyperparameters were ignored, the archive's own file wins" in text
        assert f"| URI | s3://{bucket}/runs/{name}/output/model.tar.gz |" in text
    else:
        assert "| 3 | **hyperparameters.json** | file, **injected** | " in text
        assert "```json\n{\n  \"epochs\": 7\n}\n```" in text  # the code block is the job's, untouched
    figures = report.metrics(job)
    assert figures["injected"] == (0.0 if s3_direct else 1.0)
    assert figures["members"] == 3.0
    assert figures["input_bytes"] == len(model)
    head = s3.head_object(Bucket=bucket, Key=f"runs/{name}/output/{contract.MODEL_FILENAME}")
    assert figures["output_bytes"] == head["ContentLength"]
    assert figures["repack_seconds"] >= 0 and figures["seconds"] == round(job.wait_seconds, 3)


def test_a_job_without_its_own_report_is_said_so(s3, bucket: str, moto_endpoint: str) -> None:
    """moto completes the job without running it: no report object, as with an image older than the launcher."""
    s3.put_object(Bucket=bucket, Key="models/model.tar.gz", Body=b"m")
    cfg = _config(bucket, moto_endpoint)
    result = sagemaker_launcher.launch(cfg, sleep=lambda s: None)
    job = result.job
    uri = f"s3://{bucket}/runs/{cfg.job_name}/report/{contract.REPORT_FILENAME}"
    assert job.repack_report is None and job.repack_result is None
    assert job.repack_note == f"the job's own report was not found at {uri} (an image older than the launcher?)"
    text = report.render(job)
    assert "## The job's repack\n\nthe job's own report was not found at s3://" in text
    assert "(an image older than the launcher?)" in text
    assert "The job's repack: **" not in text
    assert "members" not in report.metrics(job)


def test_a_failed_job_is_looked_at_and_its_absent_report_explained(s3, bucket: str, moto_endpoint: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/model.tar.gz", Body=b"m")

    def fail(_params: dict) -> None:
        raise RuntimeError("AlgorithmError: exit 2")

    fake = FakeSageMaker(on_create=fail)
    endpoint = fake.start()
    try:
        cfg = _config(bucket, moto_endpoint)
        clients = sagemaker_launcher.make_clients(cfg)
        clients.sagemaker = aws.client("sagemaker", region="us-east-1", endpoint_url=endpoint)
        job = JobSummary(backend=sagemaker_launcher.BACKEND)
        with pytest.raises(JobFailedError, match="AlgorithmError"):
            sagemaker_launcher.launch(cfg, clients=clients, sleep=lambda s: None, job=job)
    finally:
        fake.stop()
    assert job.repack_note.startswith(f"the job's own report was not found at s3://{bucket}/runs/")
    assert job.repack_note.endswith("(the repack writes it only when it succeeds)")
    assert "## The job's repack" in report.render(job)


def test_an_unreadable_report_does_not_fail_the_launch(s3, bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="models/model.tar.gz", Body=_model(with_hyperparameters=False))
    cfg = _config(bucket, moto_endpoint, hyperparameters_json="{}")
    clients = sagemaker_launcher.make_clients(cfg)
    clients.sagemaker.meta.events.register("provide-client-params.sagemaker.CreateProcessingJob",
                                           PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"))
    clients.s3.meta.events.register("before-send.s3.GetObject", deny_s3)  # the launcher may not read it

    result = sagemaker_launcher.launch(cfg, clients=clients, sleep=lambda s: None)

    assert result.status == "Completed"
    assert result.job.repack_report is None
    assert result.job.repack_note.startswith("the job's own report could not be read: ")
    assert "access denied" in result.job.repack_note.lower()


def test_the_location_is_read_from_the_job_so_an_older_job_has_none(s3) -> None:
    """A job created by an older launcher (no --report in its request): nothing is fetched, the report says why."""
    old = {"ProcessingJobName": "old", "ProcessingJobStatus": "Completed",
           "AppSpecification": {"ContainerArguments": [contract.MODEL.flag, contract.CONTAINER_MODEL_DIR,
                                                       contract.OUTPUT_DIR.flag, contract.CONTAINER_OUTPUT_DIR]},
           "ProcessingOutputConfig": {"Outputs": [{"OutputName": "model", "S3Output": {
               "S3Uri": "s3://b/old/output", "LocalPath": contract.CONTAINER_OUTPUT_DIR}}]}}
    location = sagemaker_launcher.report_location_from_description(old)
    assert location == sagemaker_launcher.JobReportLocation(None, None)
    job = JobSummary(backend="SageMaker", status="Completed")
    sagemaker_launcher.fetch_job_report(s3, location, job)  # no S3 call: the client would fail on bucket "b"
    assert "created by a launcher older than this one" in job.repack_note
    # a staged job of this launcher: the container paths map onto the report output's S3Uri
    new = json.loads(json.dumps(old))
    new["AppSpecification"]["ContainerArguments"] += [
        contract.REPORT_FLAG, f"{contract.CONTAINER_REPORT_DIR}/report.md",
        contract.RESULT_JSON_FLAG, f"{contract.CONTAINER_REPORT_DIR}/result.json"]
    new["ProcessingOutputConfig"]["Outputs"].append({"OutputName": "report", "S3Output": {
        "S3Uri": "s3://b/old/report/", "LocalPath": contract.CONTAINER_REPORT_DIR}})
    assert sagemaker_launcher.report_location_from_description(new) == sagemaker_launcher.JobReportLocation(
        "s3://b/old/report/report.md", "s3://b/old/report/result.json")


def test_demote_headings_leaves_code_blocks_and_non_headings_alone() -> None:
    text = "# Title\n\nA #hashtag line\n#not-a-heading\n## Sub\n````md\n# in code\n```\n# still code\n````\n### End"
    assert report.demote_headings(text) == (
        "## Title\n\nA #hashtag line\n#not-a-heading\n### Sub\n````md\n# in code\n```\n# still code\n````\n#### End")
    assert report.demote_headings("###### six") == "###### six"  # Markdown has no seventh level
    # raw HTML from whatever wrote the object is shown as text; a code block is shown as it is
    assert report.demote_headings('<img src=x onerror="alert(1)">\n```\n<b>\n```') == (
        '&lt;img src=x onerror="alert(1)">\n```\n<b>\n```')

