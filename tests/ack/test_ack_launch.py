"""The ACK launcher end to end against a fake Kubernetes API server (real kubernetes client, real HTTP) and the
moto S3 server (real staging): create, re-attach, attempts, errors, interruption, timeout, and the CLI."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import ack_reference
import pytest
import yaml
from archives import make_model_archive
from fake_kube import FakeKube

from dummy_training import cli
from dummy_training.ack import launcher as ack_launcher
from dummy_training.errors import (
    InputNotFoundError,
    Interrupted,
    InvalidInputError,
    JobFailedError,
    JobStoppedError,
    RuntimeIOError,
)
from dummy_training.sagemaker import report, staging
from dummy_training.sagemaker.launcher import LaunchConfig

NS = "kubeflow-user"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0"
ARN = "arn:aws:sagemaker:us-west-2:123456789012:processing-job/example-processing-job"


def status(name: str, **changes: Any) -> dict[str, Any]:
    """The ``status`` of the fixture ``name`` (tests/data/ack/status), with ``changes`` applied."""
    return {**ack_reference.fixture(name)["status"], **changes}


CREATED = "in_progress.yaml"
COMPLETED = "completed.yaml"
#: A launch here that waits longer than this on the real clock is wrong: it ends as a timeout (JobStoppedError,
#: "did not finish within") in seconds instead of hanging until the suite's timeout.
SHORT_TIMEOUT = 10.0


def must_not_wait(seconds: float) -> None:
    """``sleep`` for a launch that must end without polling again: the first wait fails the test at once."""
    raise AssertionError(f"the launcher waited ({seconds} s) where it must not wait at all")


@pytest.fixture
def kube(tmp_path: Path):
    with FakeKube() as fake:
        fake.config_path = fake.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
        yield fake


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "model.tar.gz"
    path.parent.mkdir()
    path.write_bytes(make_model_archive(with_hyperparameters=True, weights_size=1000, small_files=1))
    return path


def config(bucket: str, moto_endpoint: str, model: str, **overrides: Any) -> LaunchConfig:
    kwargs: dict[str, Any] = dict(model=model, role_arn=ROLE, image_uri=IMAGE, s3_prefix=f"s3://{bucket}/runs",
                                  hyperparameters_json='{"epochs": 3}', endpoint_url=moto_endpoint,
                                  job_name_parts=("run-1234", "task-repack"), poll_interval=0.01,
                                  max_poll_interval=0.01, stop_wait_seconds=2, timeout_seconds=SHORT_TIMEOUT)
    kwargs.update(overrides)
    return LaunchConfig(**kwargs)


def options(kube: FakeKube, **kw: Any) -> ack_launcher.AckOptions:
    return ack_launcher.AckOptions(kubeconfig=str(kube.config_path), **kw)


def posts(kube: FakeKube) -> list[dict[str, Any]]:
    return [body for method, _path, body in kube.requests if method == "POST"]


def spec_of(cfg: LaunchConfig, name: str) -> dict[str, Any]:
    """The resource the launcher creates for ``cfg`` as job ``name`` (inputs where it would stage them)."""
    base = ack_launcher.staging_prefix(cfg, name)
    plan = staging.plan_inputs(model=cfg.model, hyperparameters=cfg.hyperparameters,
                               hyperparameters_json=cfg.hyperparameters_json, staging_prefix=base)
    return ack_launcher.manifest_for(cfg, name, plan, ack_launcher.AckOptions(), NS)


def existing(name: str, st: dict[str, Any], *, spec_from: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(spec_from) if spec_from else {
        "apiVersion": "sagemaker.services.k8s.aws/v1alpha1", "kind": "ProcessingJob",
        "spec": {"processingJobName": name, "processingOutputConfig": {"outputs": [
            {"outputName": "model", "s3Output": {"s3URI": f"s3://earlier/{name}/output"}}]}}}
    obj["metadata"] = {"name": name, "namespace": NS}
    obj["status"] = st
    return obj


# ------------------------------------------------------------------------------------------------ create
def test_launch_stages_creates_waits_and_delivers(kube, s3, bucket, moto_endpoint, model_file, tmp_path) -> None:
    no_region = {"arn": ARN, "ownerAccountID": "", "region": ""}  # as the controller's own testdata has it
    kube.statuses = [status(CREATED), status(CREATED), status(COMPLETED, ackResourceMetadata=no_region)]
    cfg = config(bucket, moto_endpoint, str(model_file), model_output_dir=str(tmp_path / "out"))
    name = "dummy-training-run-1234-task-repack"
    out_key = f"runs/{name}/output/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=out_key, Body=b"repacked")  # what the job would have written
    job_report = "# dummy-training repack: archive preserved\n\n**Decision: preserved.** (as the job wrote it)\n"
    s3.put_object(Bucket=bucket, Key=f"runs/{name}/report/report.md", Body=job_report.encode())
    s3.put_object(Bucket=bucket, Key=f"runs/{name}/report/result.json",
                  Body=json.dumps({"decision": "preserved", "member_count": 4, "input_size": 8}).encode())

    result = ack_launcher.launch(cfg, options(kube, labels={"team": "ml"}))

    (body,) = posts(kube)
    assert ack_reference.errors(body) == []
    assert body["metadata"]["name"] == name and body["metadata"]["namespace"] == NS
    assert body["metadata"]["labels"]["team"] == "ml"
    assert kube.requests[-1][1].endswith(f"/namespaces/{NS}/processingjobs/{name}")
    inputs = {i["inputName"]: i["s3Input"]["s3URI"] for i in body["spec"]["processingInputs"]}
    model_key = f"runs/{name}/input/model/sha256-{hashlib.sha256(model_file.read_bytes()).hexdigest()}/model.tar.gz"
    hp_digest = hashlib.sha256(b'{\n  "epochs": 3\n}\n').hexdigest()
    hp_key = f"runs/{name}/input/config/sha256-{hp_digest}/hyperparameters.json"
    assert inputs == {"model": f"s3://{bucket}/{model_key}", "config": f"s3://{bucket}/{hp_key}"}
    staged = s3.get_object(Bucket=bucket, Key=model_key)["Body"].read()
    assert staged == model_file.read_bytes()
    hp = s3.get_object(Bucket=bucket, Key=hp_key)["Body"].read()
    assert json.loads(hp) == {"epochs": 3}

    assert result.job_name == name and result.job_arn == ARN and not result.reused
    assert result.model_s3_uri == f"s3://{bucket}/{out_key}"
    assert Path(result.local_model_path).read_bytes() == b"repacked"
    assert "DELETE" not in kube.methods()
    # the report's data, from the resource's status (the region from the ARN: this status has none)
    job = result.job
    assert (job.backend, job.job_name, job.job_arn, job.status, job.region) == (
        "ACK", name, ARN, "Completed", "us-west-2")
    assert job.resource == f"processingjobs.sagemaker.services.k8s.aws/{name} in namespace {NS}"
    assert job.conditions == [("ACK.ResourceSynced", "True", "ProcessingJob is in Completed status.")]
    text = report.render(job)
    assert text.startswith("# dummy-training on ACK: Completed")
    for row in (f"| Job name | {name} |", f"| ARN | {ARN} |", "| Status | Completed |",
                "| Instances | 1 × ml.m5.large |", "| Billable | not in the ACK status",
                f"| Kubernetes resource | processingjobs.sagemaker.services.k8s.aws/{name} in namespace {NS} |",
                "| ACK.ResourceSynced | True | ProcessingJob is in Completed status. |"):
        assert row in text, row
    assert f"[The job in the SageMaker console]({report.console_url('us-west-2', name)})" in text
    assert f"[Its CloudWatch log streams]({report.logs_console_url('us-west-2', name)})" in text
    assert report.metrics(job)["output_bytes"] == len(b"repacked")
    # the job's own report, read from where the resource's spec says (its report output), nested below
    assert "The job's repack: **preserved** (its own report is below)." in text
    assert text.endswith("\n\n## dummy-training repack: archive preserved\n\n**Decision: preserved.** (as the job "
                         "wrote it)\n")
    assert (report.metrics(job)["members"], report.metrics(job)["input_bytes"]) == (4.0, 8.0)


def test_missing_input_creates_nothing(kube, bucket, moto_endpoint) -> None:
    cfg = config(bucket, moto_endpoint, f"s3://{bucket}/nope/model.tar.gz")
    with pytest.raises(InputNotFoundError, match="no job was created"):
        ack_launcher.launch(cfg, options(kube))
    assert posts(kube) == []


def test_invalid_config_fails_before_any_request(kube, bucket, moto_endpoint, model_file) -> None:
    cfg = config(bucket, moto_endpoint, str(model_file), s3_direct=True, enable_network_isolation=True)
    with pytest.raises(Exception, match="network isolation"):
        ack_launcher.launch(cfg, options(kube))
    assert kube.requests == []


def test_rbac_denied_on_create_is_one_clear_line(kube, bucket, moto_endpoint, model_file) -> None:
    kube.fail_next = [404, 403]  # GET: not there; POST: forbidden
    with pytest.raises(RuntimeIOError, match="denied access.*create/get/list/watch/delete on processingjobs"):
        ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube))


def test_missing_crd_is_reported(kube, bucket, moto_endpoint, model_file) -> None:
    kube.fail_next = [404, 404]
    with pytest.raises(RuntimeIOError, match="is the ACK SageMaker controller"):
        ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube))


# ------------------------------------------------------------------------------------------- re-attaching
def test_reattaches_to_running_resource_without_creating(kube, bucket, moto_endpoint, model_file) -> None:
    name = "dummy-training-run-1234-task-repack"
    cfg = config(bucket, moto_endpoint, str(model_file))
    kube.put(NS, existing(name, status(CREATED), spec_from=spec_of(cfg, name)), scripted=True)
    kube.statuses = [status(CREATED), status(COMPLETED)]
    result = ack_launcher.launch(cfg, options(kube))
    assert posts(kube) == [] and not result.reused
    assert result.model_s3_uri == f"s3://{bucket}/runs/{name}/output/model.tar.gz"  # read from the resource


def test_completed_resource_is_reused(kube, s3, bucket, moto_endpoint, model_file) -> None:
    name = "dummy-training-run-1234-task-repack"
    cfg = config(bucket, moto_endpoint, str(model_file))
    kube.put(NS, existing(name, status(COMPLETED), spec_from=spec_of(cfg, name)))
    result = ack_launcher.launch(cfg, options(kube))
    assert result.reused and posts(kube) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)  # nothing staged for a finished job


@pytest.mark.parametrize(("change", "field"), [
    ({"image_uri": "img:2"}, "spec.appSpecification.imageURI: "),
    ({"hyperparameters_json": '{"epochs": 4}'}, "spec.processingInputs[config].s3Input.s3URI: "),
    ({"environment": {"A": "secret"}}, "spec.environment.A differs"),
    ({"instance_type": "ml.c5.xlarge"}, "spec.processingResources.clusterConfig.instanceType: ml.m5.large there"),
    ({"tags": {"team": "ml"}}, "spec.tags[team]"),
])
@pytest.mark.parametrize("state", [CREATED, COMPLETED])
def test_resource_with_another_spec_is_refused(kube, s3, bucket, moto_endpoint, model_file, change, field,
                                               state) -> None:
    """A resource under the name with another spec (another model, hyperparameters, image, ...): exit 2 naming it
    and the first field that differs; nothing staged, created or deleted. The same for an explicit job_name."""
    name = "dummy-training-run-1234-task-repack"
    kube.put(NS, existing(name, status(state), spec_from=spec_of(config(bucket, moto_endpoint, str(model_file)),
                                                                  name)))
    with pytest.raises(InvalidInputError) as info:
        ack_launcher.launch(config(bucket, moto_endpoint, str(model_file), **change), options(kube))
    message = str(info.value)
    assert message.startswith(f"processingjobs.sagemaker.services.k8s.aws/{name} in namespace {NS} already exists "
                              "with another spec (")
    assert field in message and "secret" not in message
    assert posts(kube) == [] and "DELETE" not in kube.methods()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_another_local_model_under_the_same_name_is_refused(kube, bucket, moto_endpoint, model_file,
                                                            tmp_path) -> None:
    """The staged key is the content's digest: another model file at the same path is another request."""
    name = "dummy-training-run-1234-task-repack"
    kube.put(NS, existing(name, status(COMPLETED), spec_from=spec_of(config(bucket, moto_endpoint, str(model_file)),
                                                                     name)))
    model_file.write_bytes(make_model_archive(with_hyperparameters=True, seed=1, weights_size=1000, small_files=1))
    with pytest.raises(InvalidInputError, match=r"spec\.processingInputs\[model\]\.s3Input\.s3URI: .*sha256-"):
        ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube))


def test_resource_being_deleted_is_never_re_attached(kube, bucket, moto_endpoint, model_file) -> None:
    """metadata.deletionTimestamp: a derived name goes on to the next attempt name (a new job); an explicit
    job_name is refused with one line (exit 6): its job is being stopped and SageMaker names are unique."""
    name = "dummy-training-run-1234-task-repack"
    cfg = config(bucket, moto_endpoint, str(model_file))
    doomed = existing(name, status(CREATED), spec_from=spec_of(cfg, name))
    doomed["metadata"]["deletionTimestamp"] = "2026-12-01T20:00:00Z"
    doomed["metadata"]["finalizers"] = ["finalizers.sagemaker.services.k8s.aws/ProcessingJob"]
    kube.put(NS, doomed)
    kube.statuses = [status(COMPLETED)]
    # the new attempt is Completed at its first read: no sleep (re-attaching to the doomed one would wait on it)
    result = ack_launcher.launch(cfg, options(kube), sleep=must_not_wait)
    (body,) = posts(kube)
    assert body["metadata"]["name"] == f"{name}-a2" and result.job_name == f"{name}-a2"
    assert "DELETE" not in kube.methods()

    explicit = config(bucket, moto_endpoint, str(model_file), job_name="my-job")
    doomed = existing("my-job", status(COMPLETED), spec_from=spec_of(explicit, "my-job"))
    doomed["metadata"]["deletionTimestamp"] = "2026-12-01T20:00:00Z"
    kube.put(NS, doomed)
    with pytest.raises(JobStoppedError, match=f"my-job in namespace {NS} is being deleted .*pass a new job_name"):
        ack_launcher.launch(explicit, options(kube), sleep=must_not_wait)
    assert len(posts(kube)) == 1


def test_concurrent_twin_409_reattaches(kube, bucket, moto_endpoint, model_file) -> None:
    def twin(fake: FakeKube, ns: str, body: dict[str, Any]) -> None:
        fake.put(ns, existing(body["metadata"]["name"], status(CREATED), spec_from=body), scripted=True)

    kube.before_post = twin
    kube.statuses = [status(COMPLETED)]
    result = ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube))
    assert len(posts(kube)) == 1 and result.job_arn == ARN


def test_failed_earlier_attempt_runs_next_attempt_name(kube, bucket, moto_endpoint, model_file) -> None:
    base = "dummy-training-run-1234-task-repack"
    kube.put(NS, existing(base, status("failed.yaml")))
    kube.put(NS, existing(f"{base}-a2", status("terminal.yaml")))
    kube.statuses = [status(COMPLETED)]
    result = ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube))
    (body,) = posts(kube)
    assert body["metadata"]["name"] == f"{base}-a3" and result.job_name == f"{base}-a3"
    # inputs are staged under the attempt-independent name
    assert f"/runs/{base}/input/" in body["spec"]["processingInputs"][0]["s3Input"]["s3URI"]


def test_explicit_job_name_that_failed_is_not_rerun(kube, bucket, moto_endpoint, model_file) -> None:
    cfg = config(bucket, moto_endpoint, str(model_file), job_name="my-job")
    kube.put(NS, existing("my-job", status("stopped.yaml"), spec_from=spec_of(cfg, "my-job")))
    with pytest.raises(JobFailedError, match="pass a new job_name"):
        ack_launcher.launch(cfg, options(kube))
    assert posts(kube) == []


# ----------------------------------------------------------------------------------------------- outcomes
@pytest.mark.parametrize(("final", "error", "match"), [
    (lambda: status("failed.yaml", failureReason="ClientError: no model.tar.gz"), JobFailedError,
     "ClientError: no model.tar.gz"),
    (lambda: status("stopped.yaml"), JobStoppedError, "was stopped"),
    (lambda: status("terminal.yaml"), JobFailedError,
     "ACK.Terminal.*must not include a special character"),
])
def test_job_outcomes(kube, bucket, moto_endpoint, model_file, final, error, match) -> None:
    kube.statuses = [status(CREATED), final()]
    job = report.JobSummary(backend=ack_launcher.BACKEND)
    with pytest.raises(error, match=match):
        ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube), job=job)
    assert "DELETE" not in kube.methods()  # an ended job is left for `kubectl describe`
    if job.status == "Failed":  # a job that ran is looked at for its own report; a rejected or stopped one is not
        assert job.repack_note == (f"the job's own report was not found at s3://{bucket}/runs/dummy-training-"
                                   "run-1234-task-repack/report/report.md (the repack writes it only when it "
                                   "succeeds)")
    else:
        assert job.repack_note == "" and job.repack_report is None


def test_interrupt_deletes_the_resource(kube, bucket, moto_endpoint, model_file) -> None:
    kube.statuses = [status(CREATED)]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise Interrupted("interrupted by SIGTERM")

    with pytest.raises(Interrupted):
        ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube), sleep=sleep)
    assert "DELETE" in kube.methods() and kube.objects == {}


def test_interrupt_during_an_api_request_deletes_the_resource(kube, bucket, moto_endpoint, model_file,
                                                              monkeypatch) -> None:
    kube.statuses = [status(CREATED)]
    real_get = ack_launcher.ProcessingJobResource.get
    calls = []

    def get(self: ack_launcher.ProcessingJobResource) -> Any:
        calls.append(1)
        if len(calls) == 3:  # the first GET is the resolve, then polls: the signal lands in the second poll
            raise Interrupted("interrupted by SIGTERM")
        return real_get(self)

    monkeypatch.setattr(ack_launcher.ProcessingJobResource, "get", get)
    with pytest.raises(Interrupted):
        ack_launcher.launch(config(bucket, moto_endpoint, str(model_file)), options(kube), sleep=lambda _s: None)
    assert "DELETE" in kube.methods() and kube.objects == {}


def test_timeout_deletes_the_resource(kube, bucket, moto_endpoint, model_file) -> None:
    kube.statuses = [status(CREATED)]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    cfg = config(bucket, moto_endpoint, str(model_file), timeout_seconds=60, poll_interval=10, max_poll_interval=10)
    with pytest.raises(JobStoppedError, match="did not finish within 60 s"):
        ack_launcher.launch(cfg, options(kube), sleep=sleep, clock=lambda: now[0])
    assert "DELETE" in kube.methods() and kube.objects == {}


# ---------------------------------------------------------------------------------------------------- CLI
def _cli_job_args(bucket: str, moto_endpoint: str, model: str) -> list[str]:
    return ["--model", model, "--s3-prefix", f"s3://{bucket}/runs", "--role-arn", ROLE, "--image-uri", IMAGE,
            "--endpoint-url", moto_endpoint, "--job-name", "cli-job"]


def test_cli_manifest_prints_applyable_yaml(capsys, bucket, moto_endpoint) -> None:
    rc = cli.main(["ack", "manifest", *_cli_job_args(bucket, moto_endpoint, f"s3://{bucket}/m/model.tar.gz"),
                   "--namespace", "team-a", "--subnets", "subnet-1,subnet-2", "--security-group-ids", "sg-1",
                   "--environment", "A=1", "--tags", "team=ml", "--volume-kms-key-id", "key-1",
                   "--enable-network-isolation"])
    assert rc == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert ack_reference.errors(manifest) == []
    assert manifest["metadata"]["namespace"] == "team-a"
    spec = manifest["spec"]
    assert spec["networkConfig"]["vpcConfig"] == {"securityGroupIDs": ["sg-1"], "subnets": ["subnet-1", "subnet-2"]}
    assert spec["processingResources"]["clusterConfig"]["volumeKMSKeyID"] == "key-1"
    assert spec["processingOutputConfig"]["outputs"][0]["s3Output"]["s3URI"] == f"s3://{bucket}/runs/cli-job/output"


def test_cli_manifest_refuses_unstaged_local_input(capsys, bucket, moto_endpoint, model_file) -> None:
    assert cli.main(["ack", "manifest", *_cli_job_args(bucket, moto_endpoint, str(model_file))]) == 2
    assert "add --stage" in capsys.readouterr().err


def test_cli_manifest_stage_uploads(capsys, s3, bucket, moto_endpoint, model_file) -> None:
    rc = cli.main(["ack", "manifest", "--stage", *_cli_job_args(bucket, moto_endpoint, str(model_file))])
    assert rc == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    uri = manifest["spec"]["processingInputs"][0]["s3Input"]["s3URI"]
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert uri == f"s3://{bucket}/runs/cli-job/input/model/sha256-{digest}/model.tar.gz"
    assert s3.head_object(Bucket=bucket, Key=uri.split("/", 3)[3])["ContentLength"] > 0


def test_cli_run_writes_outputs(kube, capsys, bucket, moto_endpoint, model_file, tmp_path) -> None:
    kube.statuses = [status(COMPLETED)]
    result_json = tmp_path / "result.json"
    rc = cli.main(["ack", "run", *_cli_job_args(bucket, moto_endpoint, str(model_file)),
                   "--kubeconfig", str(kube.config_path), "--poll-interval", "0.01",
                   "--job-arn-output", str(tmp_path / "arn"), "--result-json", str(result_json),
                   "--report", str(tmp_path / "r.md")])
    assert rc == 0
    assert (tmp_path / "r.md").read_text().startswith("# dummy-training on ACK: Completed")
    assert capsys.readouterr().out.strip() == f"s3://{bucket}/runs/cli-job/output/model.tar.gz"
    assert (tmp_path / "arn").read_text() == ARN
    assert json.loads(result_json.read_text())["job_arn"] == ARN
    assert posts(kube)[0]["metadata"]["namespace"] == NS  # from the kubeconfig context


def test_cli_run_failed_job_exit_code(kube, capsys, bucket, moto_endpoint, model_file, tmp_path) -> None:
    kube.statuses = [status("failed.yaml", failureReason="AlgorithmError: boom")]
    rc = cli.main(["ack", "run", *_cli_job_args(bucket, moto_endpoint, str(model_file)),
                   "--kubeconfig", str(kube.config_path), "--poll-interval", "0.01",
                   "--report", str(tmp_path / "r.md")])
    assert rc == 5
    assert "AlgorithmError: boom" in capsys.readouterr().err
    text = (tmp_path / "r.md").read_text()  # the report of a failed job is written all the same
    assert text.startswith("# dummy-training on ACK: Failed")
    assert "| Failure reason | AlgorithmError: boom |" in text and f"| ARN | {ARN} |" in text
    assert "**Status: Failed.** processing job cli-job failed: AlgorithmError: boom" in text
