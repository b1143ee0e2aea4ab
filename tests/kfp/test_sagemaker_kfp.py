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

    from dummy_training.kfp.runtime import run_launcher_component

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
    try:
        run_launcher_component(
            "sagemaker", output_model=output_model, model_s3_uri_path=str(tmp_path / "uri"),
            job_arn_path=str(tmp_path / "arn"), model=f"s3://{bucket}/m/model.tar.gz", role_arn=ROLE,
            image_uri="img:1", s3_prefix=f"s3://{bucket}/runs", region="us-east-1", job_name="retried-job",
            poll_interval=0.05, max_poll_interval=0.1, timeout_seconds=10)
    except SystemExit as exc:
        pytest.fail(f"the component failed (exit {exc.code}): {capsys.readouterr().err.strip().splitlines()[-1]}")
    finally:
        fake.stop()
    assert Path(output_model.path).is_file()
    assert Path(output_model.path).read_bytes() == b"the repacked model"
    assert output_model.metadata["sha256"] == hashlib.sha256(b"the repacked model").hexdigest()
    assert sorted(p.name for p in task_dir.iterdir()) == ["output_model"]  # no .output_model.download left


# ------------------------------------------------------------------------- one interface, a derived job name
def test_sagemaker_and_ack_components_have_one_interface() -> None:
    """A pipeline switches backend by switching the component: the same inputs (names, types, defaults, whether
    optional), the same outputs; the ACK component adds only its optional ``namespace``."""
    from dummy_training.kfp.components.ack import ack_dummy_training
    from dummy_training.kfp.components.sagemaker import sagemaker_dummy_training

    sm, ack = sagemaker_dummy_training.component_spec, ack_dummy_training.component_spec

    def shape(specs: dict) -> dict:
        return {name: (s.type, s.default, s.optional) for name, s in specs.items()}

    ack_inputs = shape(ack.inputs)
    assert ack_inputs.pop("namespace") == ("String", "", True)
    assert shape(sm.inputs) == ack_inputs
    assert {n: o.type for n, o in sm.outputs.items()} == {n: o.type for n, o in ack.outputs.items()}
    # model and hyperparameters are URI strings: KFP's launcher would download an input artifact into the pod
    for name in (contract.MODEL.name, contract.HYPERPARAMETERS.name):
        assert sm.inputs[name].type == "String", name
    assert "kfp_run_id" not in sm.inputs and "kfp_task_id" not in sm.inputs  # nothing to wire for a retry
    # the pipeline's sagemaker and ack branches call them with the same arguments
    pipeline = next(yaml.safe_load_all((REPO / "pipelines" / "dummy_training_pipeline.yaml").read_text()))
    tasks = {}
    for comp in pipeline["components"].values():
        for task in (comp.get("dag") or {}).get("tasks", {}).values():
            name = task["componentRef"]["name"]
            if name in ("comp-sagemaker-dummy-training", "comp-ack-dummy-training"):
                tasks[name] = set(task["inputs"]["parameters"])
    assert tasks["comp-sagemaker-dummy-training"] == tasks["comp-ack-dummy-training"]


@pytest.mark.parametrize(("uri", "task"), [
    # the KFP 2.15-2.17 driver: <pipeline root>/<pipeline>/<run id>/<task name>/<salt>/<output>
    ("s3://ml/v2/artifacts/dummy-training-pipeline/8f4b1f9e-6f0e-4d0b-9a57-0f3c1e8f2a11/sagemaker-dummy-training/"
     "0b1d7c2e-1f7a-4c39-8f0e-6d2a9b3c4e5f/output_model", "sagemaker-dummy-training"),
    # kfp.local: <pipeline root>/<pipeline>-<time>/<task name>/<output>
    ("/tmp/root/sagemaker-dummy-training-2026-12-04-18-02-26-529269/sagemaker-dummy-training/output_model",
     "sagemaker-dummy-training"),
])
def test_job_name_parts_come_from_the_tasks_output_uri(uri: str, task: str) -> None:
    from types import SimpleNamespace

    from dummy_training.kfp.runtime import task_job_name_parts
    from dummy_training.sagemaker.launcher import default_job_name

    parts = task_job_name_parts(SimpleNamespace(uri=uri))
    assert parts[0] == task and re.fullmatch(r"[0-9a-f]{10}", parts[1])
    assert task_job_name_parts(SimpleNamespace(uri=uri)) == parts  # a retry: the same uri, the same name
    name = default_job_name(*parts)
    assert name.startswith(f"dummy-training-{task}-") and len(name) <= 63
    # another run, or another ParallelFor iteration (another salt), of the same task: another name
    other = uri.replace("8f4b1f9e", "9f4b1f9e").replace("0b1d7c2e", "1b1d7c2e").replace("18-02-26", "18-02-27")
    assert task_job_name_parts(SimpleNamespace(uri=other)) != parts
    assert task_job_name_parts(SimpleNamespace(uri="")) == ()


def test_a_retried_task_reattaches_to_its_job_without_wiring(s3, bucket: str, moto_endpoint: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The component body twice with the same output artifact (what Argo's retry of the task's pod gives it): one
    CreateProcessingJob, and the second attempt re-attaches to the completed job."""
    from types import SimpleNamespace

    from dummy_training.kfp.runtime import run_launcher_component, task_job_name_parts
    from dummy_training.sagemaker.launcher import default_job_name

    s3.put_object(Bucket=bucket, Key="models/m.tar.gz", Body=gz(build_tar([file("weights.bin", b"12345")])))
    fake = FakeSageMaker(on_create=PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"))
    endpoint = fake.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", endpoint)
    task_root = tmp_path / "root" / "p-2026-12-04-18-00-00-000000" / "sagemaker-dummy-training"
    results = []
    try:
        for attempt in (1, 2):
            out = SimpleNamespace(uri=str(task_root / "output_model"), path=str(task_root / "output_model"),
                                  metadata={})
            result = run_launcher_component(
                "sagemaker", output_model=out, model_s3_uri_path=str(tmp_path / f"uri-{attempt}"),
                job_arn_path=str(tmp_path / f"arn-{attempt}"), download_model=False,
                model=f"s3://{bucket}/models/m.tar.gz", role_arn=ROLE, image_uri="img:1",
                s3_prefix=f"s3://{bucket}/runs", hyperparameters_json='{"epochs": 2}', region="us-east-1")
            results.append((result, out))
    finally:
        fake.stop()
    creates = [p for op, p in fake.calls if op == "CreateProcessingJob"]
    assert len(creates) == 1
    expected = default_job_name(*task_job_name_parts(SimpleNamespace(uri=str(task_root / "output_model"))))
    assert creates[0]["ProcessingJobName"] == expected
    (first, _), (second, out) = results
    assert (first.reused, second.reused) == (False, True)
    assert second.job_name == first.job_name == expected
    assert out.metadata["reused"] is True and (tmp_path / "arn-2").read_text() == first.job_arn
