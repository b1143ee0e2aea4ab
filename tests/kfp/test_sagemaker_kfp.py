"""The SageMaker KFP component: its interface agrees with the contract and the launcher, and it runs under
kfp.local: an s3:// model imported as an artifact, the launcher against a SageMaker endpoint that plays the job
from the request (repack on this machine, output to moto's S3), the model delivered into Output[Model] and checked
by the pipeline's downstream check step."""

# No ``from __future__ import annotations``: KFP reads the pipeline annotations at decoration time.

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from archives import build_tar, file, gz
from fake_sagemaker import FakeSageMaker, PlaySageMaker

from dummy_training import contract
from dummy_training.sagemaker.report import console_url, logs_console_url
from dummy_training.step.report import md_text

kfp = pytest.importorskip("kfp")

ROLE = "arn:aws:iam::123456789012:role/dummy-training"
REPO = Path(__file__).resolve().parents[2]


def _component_spec() -> dict[str, Any]:
    from dummy_training.kfp.components.sagemaker import sagemaker_dummy_training

    return sagemaker_dummy_training.component_spec


def test_component_interface_matches_the_contract() -> None:
    spec = _component_spec()
    inputs = spec.inputs
    outputs = spec.outputs
    for p in contract.REPACK_INPUTS:
        assert p.name in inputs
    assert {contract.OUTPUT_MODEL_S3_URI, contract.OUTPUT_JOB_ARN, "output_model", contract.OUTPUT_REPORT,
            contract.OUTPUT_METRICS} <= set(outputs)
    defaults = {name: inputs[name].default for name in inputs}
    assert defaults["instance_type"] == contract.DEFAULT_INSTANCE_TYPE
    assert defaults["instance_count"] == contract.DEFAULT_INSTANCE_COUNT
    assert defaults["volume_size_gb"] == contract.DEFAULT_VOLUME_SIZE_GB
    assert defaults["max_runtime_seconds"] == contract.DEFAULT_MAX_RUNTIME_SECONDS
    # every launcher setting a pipeline author may want is an input
    import dataclasses

    from dummy_training.sagemaker.launcher import LaunchConfig

    not_inputs = {"job_name_parts", "model_output_dir", "poll_interval", "max_poll_interval", "stop_wait_seconds",
                  "stream_logs"}
    assert {f.name for f in dataclasses.fields(LaunchConfig)} - not_inputs <= set(inputs)


def test_committed_component_yaml_is_the_compiled_one(tmp_path: Path) -> None:
    from kfp import compiler

    from dummy_training.kfp.compile import normalized
    from dummy_training.kfp.components.sagemaker import COMPONENTS

    fresh = tmp_path / "component.yaml"
    compiler.Compiler().compile(COMPONENTS["sagemaker_dummy_training"], str(fresh))
    committed = REPO / "components" / "sagemaker_dummy_training" / "component.yaml"
    assert yaml.safe_load(normalized(committed.read_text())) == yaml.safe_load(normalized(fresh.read_text()))


def test_compiled_pipeline_sagemaker_branch_runs_with_kfp_local(s3, bucket: str, moto_endpoint: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed pipeline YAML with backend=sagemaker: import, launcher, played job, download, check."""
    from dummy_training.kfp.demo import packaged_pipeline, run_pipeline

    s3.put_object(Bucket=bucket, Key="models/bert.tar.gz", Body=gz(build_tar([file("weights.bin", b"12345")])))
    s3.put_object(Bucket=bucket, Key="cfg/hp.json", Body=b'{"epochs": 4}')
    fake = FakeSageMaker(on_create=PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"))
    endpoint = fake.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # S3 and logs: moto; SageMaker: the player
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", endpoint)
    try:
        result = run_pipeline(packaged_pipeline("dummy_training_pipeline.yaml"), tmp_path / "out", {
            "backend": "sagemaker", "model_uri": f"s3://{bucket}/models/bert.tar.gz",
            "hyperparameters_uri": f"s3://{bucket}/cfg/hp.json", "role_arn": ROLE, "image_uri": "img:1",
            "s3_prefix": f"s3://{bucket}/runs"}, echo=io.StringIO())
    finally:
        fake.stop()
    creates = [p for op, p in fake.calls if op == "CreateProcessingJob"]
    assert len(creates) == 1
    name = creates[0]["ProcessingJobName"]
    assert name.startswith("dummy-training-")  # derived from the run and task ids
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in creates[0]["ProcessingInputs"]}
    hp_uri = inputs[contract.PROCESSING_INPUT_HYPERPARAMETERS]  # copied to a key named by its source URI
    assert re.search(r"/input/config/s3-[0-9a-f]{16}/hyperparameters.json$", hp_uri)
    # the played job's output was delivered into the Output[Model] and read by the check step
    assert result.checked_hyperparameters == {"epochs": 4}
    with tarfile.open(result.output) as tar:
        assert json.load(tar.extractfile(contract.HYPERPARAMETERS_FILENAME)) == {"epochs": 4}  # type: ignore[arg-type]
    key = f"runs/{name}/output/{contract.MODEL_FILENAME}"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == result.output.read_bytes()
    assert result.metadata[contract.OUTPUT_MODEL_S3_URI] == f"s3://{bucket}/{key}"
    # the Output[Model] is the archive itself (no directory around it), with the native component's metadata
    assert result.output.name == "output_model" and result.output.is_file()
    assert not [p.name for p in result.output.parent.iterdir() if p.name.startswith(".")], "download dir left"
    assert result.metadata["sha256"] == hashlib.sha256(result.output.read_bytes()).hexdigest()
    assert result.metadata["size"] == result.output.stat().st_size
    assert (result.metadata["decision"], result.metadata["method"]) == (contract.DECISION_INJECTED, "splice")
    assert f"| Downloaded to | {md_text(result.output)}" in result.report_path.read_text()
    # the launcher's report (Output[Markdown]): the job a person looks for, with its links; and its metrics
    report = result.report_path.read_text()
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}"
    assert report.startswith("# dummy-training on SageMaker: Completed")
    for row in (f"| Job name | {name} |", f"| ARN | {arn} |", "| Status | Completed |",
                "| Instances | 1 × ml.m5.large |", "| Failure reason | — |"):
        assert row in report, row
    assert "| Billable | ≈ " in report and "instance-seconds" in report
    assert f"[The job in the SageMaker console]({console_url('us-east-1', name)})" in report
    assert f"[Its CloudWatch log streams]({logs_console_url('us-east-1', name)})" in report
    assert result.metrics["billable_seconds"] >= 0 and result.metrics["instance_count"] == 1
    assert result.metrics["output_bytes"] == result.output.stat().st_size
    # and the job's own repack report below it, read from <base>/<job>/report/; its figures in the metrics
    assert "The job's repack: **injected** (its own report is below)." in report
    assert "\n## dummy-training repack: hyperparameters.json injected\n" in report
    assert "| 1 | weights.bin | file | 5 bytes |" in report
    assert f"| The job's report (S3) | s3://{bucket}/runs/{name}/report/report.md |".replace("_", "\\_") in report
    assert result.metrics["members"] == 2 and result.metrics["injected"] == 1  # weights.bin + the injected file


def test_failed_launch_still_writes_and_logs_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """KFP uploads no output of a failed task: the component writes the report anyway and logs it."""
    from types import SimpleNamespace

    from dummy_training.console import setup_logging
    from dummy_training.errors import EXIT_JOB_FAILED, JobFailedError
    from dummy_training.kfp.runtime import launch_with_report
    from dummy_training.sagemaker.report import JobSummary

    logged: dict[str, float] = {}
    report = SimpleNamespace(path=str(tmp_path / "report"))
    metrics = SimpleNamespace(log_metric=logged.__setitem__)
    job = JobSummary(backend="SageMaker", job_name="job-1", region="us-east-1", status="Failed",
                     job_arn="arn:aws:sagemaker:us-east-1:123456789012:processing-job/job-1",
                     failure_reason="AlgorithmError: boom", instance_type="ml.m5.large", instance_count=1)

    def launch() -> None:
        raise JobFailedError("processing job job-1 failed: AlgorithmError: boom")

    setup_logging()  # as the component does, onto the captured stderr
    with pytest.raises(SystemExit) as info:
        launch_with_report(launch, job, report, metrics)
    assert info.value.code == EXIT_JOB_FAILED
    text = Path(report.path).read_text()
    assert "**Status: Failed.** processing job job-1 failed: AlgorithmError: boom" in text
    assert "| ARN | arn:aws:sagemaker:us-east-1:123456789012:processing-job/job-1 |" in text
    assert logged["instance_count"] == 1.0
    err = capsys.readouterr().err
    assert "KFP does not upload the outputs of a failed task" in err and "| Failure reason | AlgorithmError" in err
    assert err.rstrip().splitlines()[-1] == "dummy-training: error: processing job job-1 failed: AlgorithmError: boom"


@pytest.fixture
def process_state_restored():  # noqa: ANN201
    """The component sets up the process as a KFP executor's (SIGTERM/SIGINT handlers, logging onto stderr):
    put pytest's back afterwards."""
    import logging
    import signal

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    logger = logging.getLogger("dummy_training")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


def test_a_directory_left_at_output_model_by_an_earlier_attempt_is_replaced(
        s3, bucket: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture, process_state_restored: None) -> None:
    """A retried task finds a directory where its output_model goes (an earlier attempt's): the component
    replaces it with the model.tar.gz itself and leaves nothing else beside it (no download directory)."""
    from types import SimpleNamespace

    from dummy_training.kfp.runtime import run_sagemaker_component
    from dummy_training.sagemaker.launcher import LaunchConfig

    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    s3.put_object(Bucket=bucket, Key="runs/retried-job/output/model.tar.gz", Body=b"the repacked model")
    task_dir = tmp_path / "task"
    leftover = task_dir / "output_model"
    (leftover / "nested").mkdir(parents=True)
    (leftover / contract.MODEL_FILENAME).write_bytes(b"an earlier attempt's download")
    (leftover / "nested" / "part").write_bytes(b"x")
    output_model = SimpleNamespace(path=str(leftover), uri="", metadata={})
    fake = FakeSageMaker(running_status="Completed")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", fake.start())
    config = LaunchConfig(model=f"s3://{bucket}/m/model.tar.gz", role_arn=ROLE, image_uri="img:1",
                          s3_prefix=f"s3://{bucket}/runs", region="us-east-1", job_name="retried-job",
                          stream_logs=False, poll_interval=0.05, max_poll_interval=0.1, timeout_seconds=10)
    try:
        run_sagemaker_component(config, output_model)
    except SystemExit as exc:
        pytest.fail(f"the component failed (exit {exc.code}): {capsys.readouterr().err.strip().splitlines()[-1]}")
    finally:
        fake.stop()
    assert Path(output_model.path).is_file()
    assert Path(output_model.path).read_bytes() == b"the repacked model"
    assert output_model.metadata["sha256"] == hashlib.sha256(b"the repacked model").hexdigest()
    assert sorted(p.name for p in task_dir.iterdir()) == ["output_model"]  # no .output_model.download left
