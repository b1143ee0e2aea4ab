"""`dummy-training sagemaker` as a real process: SIGTERM stops the job; error lines and exit codes; the request
agrees with the contract and with what `dummy-training repack` accepts."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_sagemaker import FakeSageMaker

from dummy_training import __version__, cli, contract
from dummy_training.errors import EXIT_INTERRUPTED, EXIT_INVALID_INPUT, EXIT_JOB_FAILED, EXIT_NOT_FOUND, EXIT_RUNTIME
from dummy_training.sagemaker import processing_job

ROLE = "arn:aws:iam::123456789012:role/dummy-training"


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dummy_training", "sagemaker", *args]


def _base_args(bucket: str) -> list[str]:
    return ["--model", f"s3://{bucket}/m/model.tar.gz", "--s3-prefix", f"s3://{bucket}/runs",
            "--role-arn", ROLE, "--image-uri", "img:1", "--job-name", "sigterm-job",
            "--poll-interval", "0.05", "--max-poll-interval", "0.1", "--no-logs"]


def test_sigterm_stops_the_processing_job(s3, bucket: str, moto_endpoint: str) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    fake = FakeSageMaker()  # jobs stay InProgress until stopped
    endpoint = fake.start()
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_SAGEMAKER": endpoint}
    proc = subprocess.Popen(_cmd(*_base_args(bucket)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while fake.names().count("DescribeProcessingJob") < 3:  # created, and being waited on
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the launcher never started waiting"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        fake.stop()
    assert proc.returncode == EXIT_INTERRUPTED, err
    names = fake.names()
    assert "CreateProcessingJob" in names and "StopProcessingJob" in names
    stop_at = names.index("StopProcessingJob")
    assert "DescribeProcessingJob" in names[stop_at + 1:]  # waited for Stopping/Stopped after stopping
    assert fake.jobs["sigterm-job"]["ProcessingJobStatus"] in ("Stopping", "Stopped")
    assert "interrupted by SIGTERM" in err
    assert "console.aws.amazon.com/sagemaker" in err  # the console URL came first


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(*args), env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("dummy-training: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_model_object_is_one_line_and_creates_no_job(s3, bucket: str, moto_endpoint: str) -> None:
    fake = FakeSageMaker()
    endpoint = fake.start()
    try:
        res = _run(_base_args(bucket), {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_SAGEMAKER": endpoint})
    finally:
        fake.stop()
    assert res.returncode == EXIT_NOT_FOUND
    assert f"s3://{bucket}/m/model.tar.gz" in _one_error_line(res.stderr)
    assert "CreateProcessingJob" not in fake.names()


def test_report_is_written_for_a_completed_and_for_a_failed_job(s3, bucket: str, moto_endpoint: str,
                                                                tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")

    def fail_the_job(_params: dict) -> None:
        raise RuntimeError("ClientError: the container exited 1")

    fake = FakeSageMaker(on_create=fail_the_job)
    endpoint = fake.start()
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_SAGEMAKER": endpoint}
    try:
        failed = _run([*_base_args(bucket), "--report", str(tmp_path / "failed.md")], env)
        fake.on_create = None
        fake.running_status = "Completed"
        done = _run([*_base_args(bucket), "--job-name", "done-job", "--report", str(tmp_path / "done.md")], env)
    finally:
        fake.stop()
    assert failed.returncode == EXIT_JOB_FAILED
    assert "the container exited 1" in _one_error_line(failed.stderr)
    text = (tmp_path / "failed.md").read_text()
    assert text.startswith("# dummy-training on SageMaker: Failed")
    assert "**Status: Failed.** processing job sigterm-job failed: ClientError: the container exited 1" in text
    assert "| Failure reason | ClientError: the container exited 1 |" in text
    assert "| ARN | arn:aws:sagemaker:us-east-1:123456789012:processing-job/sigterm-job |" in text
    assert "processing-jobs/sigterm-job)" in text and "logStreamNameFilter$3Dsigterm-job$252F)" in text
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "done.md").read_text()
    assert text.startswith("# dummy-training on SageMaker: Completed")
    assert f"| Model (S3) | s3://{bucket}/runs/done-job/output/model.tar.gz |".replace("_", "\\_") in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.md", "failed.md"]
    # neither job ran a repack here: each report says why the job's own report is missing
    assert (f"## The job's repack\n\nthe job's own report was not found at s3://{bucket}/runs/done-job/report/"
            "report.md (an image older than the launcher?)") in text
    assert (f"the job's own report was not found at s3://{bucket}/runs/sigterm-job/report/report.md (the repack "
            "writes it only when it succeeds)") in (tmp_path / "failed.md").read_text()


def test_report_and_result_json_carry_the_jobs_own(s3, bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    """The job played from the request (the repack run on this machine, its outputs uploaded to moto)."""
    from fake_sagemaker import PlaySageMaker
    from s3_helpers import big_model

    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=big_model(1, with_hyperparameters=True))
    fake = FakeSageMaker(on_create=PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"))
    endpoint = fake.start()
    try:
        res = _run([*_base_args(bucket), "--report", str(tmp_path / "r.md"), "--result-json", str(tmp_path / "r.json")],
                   {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_SAGEMAKER": endpoint})
    finally:
        fake.stop()
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "r.md").read_text()
    assert text.startswith("# dummy-training on SageMaker: Completed")
    assert "The job's repack: **preserved** (its own report is below)." in text
    assert "\n## dummy-training repack: archive preserved\n" in text and "**Decision: preserved.**" in text
    assert "| 1 | config.json | file | 14 bytes |" in text
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["repack"]["decision"] == contract.DECISION_PRESERVED
    assert summary["repack"]["method"] == "copy"
    # the output's sha256 (the job's repack computed it), the output's member count, the version
    body = s3.get_object(Bucket=bucket, Key=summary["model_s3_uri"].split("/", 3)[3])["Body"].read()
    assert summary["sha256"] == hashlib.sha256(body).hexdigest() == summary["repack"]["sha256"]
    assert summary["member_count"] == summary["repack"]["member_count"] == 4  # big_model(1): 4 members
    assert summary["dummy_training_version"] == __version__
    umask = os.umask(0)
    os.umask(umask)
    for name in ("r.md", "r.json"):  # as the model would be: 0644 less the umask, not 0600
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644 & ~umask


def test_no_credentials_is_one_line(bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_REGION"] = "us-east-1"  # only AWS_REGION (not AWS_DEFAULT_REGION), as on EKS with IRSA
    env.update({"AWS_ENDPOINT_URL": moto_endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    res = subprocess.run(_cmd(*_base_args(bucket)), env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == EXIT_RUNTIME
    assert "no AWS credentials" in _one_error_line(res.stderr)


def test_no_region_is_one_line(bucket: str, moto_endpoint: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    env["AWS_ENDPOINT_URL"] = moto_endpoint
    res = subprocess.run(_cmd(*_base_args(bucket)), env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == EXIT_RUNTIME
    assert "no AWS region" in _one_error_line(res.stderr)


def test_bad_role_arn_is_one_line(bucket: str, moto_endpoint: str) -> None:
    args = _base_args(bucket)
    args[args.index("--role-arn") + 1] = "dummy-role"
    res = _run(args, {"AWS_ENDPOINT_URL": moto_endpoint})
    assert res.returncode == EXIT_INVALID_INPUT
    assert "invalid role ARN" in _one_error_line(res.stderr)


@pytest.mark.parametrize("command", [["sagemaker", "--dry-run"], ["ack", "manifest"]])
@pytest.mark.parametrize("instance_type", ["m5.large", "ml.m5", "ML.M5.LARGE", "ml.m5.large "])
def test_an_instance_type_without_ml_is_one_line_exit_2(command: list[str], instance_type: str,
                                                         bucket: str) -> None:
    """A SageMaker instance type is ml.<family>.<size>: anything else is refused before any AWS call."""
    base = [sys.executable, "-m", "dummy_training", *command, "--model", f"s3://{bucket}/m/model.tar.gz",
            "--s3-prefix", f"s3://{bucket}/runs", "--role-arn", ROLE, "--image-uri", "img:1", "--job-name", "j"]

    def run(value: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, "--instance-type", value], capture_output=True, text=True, timeout=60)

    res = run(instance_type)
    assert res.returncode == EXIT_INVALID_INPUT, res.stderr
    assert f"invalid instance type {instance_type!r}" in _one_error_line(res.stderr)
    assert res.stdout == ""
    ok = run("ml.g4dn.xlarge")
    assert ok.returncode == 0, ok.stderr
    assert "ml.g4dn.xlarge" in ok.stdout


def test_access_denied_is_one_line(s3, bucket: str) -> None:
    """A real HTTP 403 from the S3 endpoint (the fake answers every S3 call AccessDenied)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Deny(BaseHTTPRequestHandler):
        def _deny(self) -> None:
            body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            self.send_response(403)
            self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET = do_PUT = do_POST = _deny  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = _run(_base_args(bucket), {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}"})
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == EXIT_RUNTIME
    assert "access denied" in _one_error_line(res.stderr).lower()


# --------------------------------------------------------------------------------- contract alignment
@pytest.mark.parametrize("s3_direct", [False, True])
@pytest.mark.parametrize("with_hp", [False, True])
def test_request_matches_the_contract_and_the_repack_cli(s3_direct: bool, with_hp: bool) -> None:
    from dummy_training.sagemaker.launcher import LaunchConfig, build_spec
    from dummy_training.sagemaker.staging import StagedInputs

    cfg = LaunchConfig(model="s3://b/m/model.tar.gz", role_arn=ROLE, image_uri="img:1", s3_prefix="s3://b/runs",
                       s3_direct=s3_direct)
    staged = StagedInputs("s3://b/m/model.tar.gz", "s3://b/h/hyperparameters.json" if with_hp else None)
    request = processing_job.build_create_processing_job_request(build_spec(cfg, "job-1", staged))
    app = request["AppSpecification"]
    assert app["ContainerEntrypoint"] == [contract.CONSOLE_SCRIPT, contract.REPACK_COMMAND]
    args = cli.build_parser().parse_args([contract.REPACK_COMMAND, *app["ContainerArguments"]])
    assert args.command == contract.REPACK_COMMAND
    if s3_direct:
        assert "ProcessingInputs" not in request and "ProcessingOutputConfig" not in request
        assert getattr(args, contract.MODEL.name) == "s3://b/m/model.tar.gz"
        assert getattr(args, contract.OUTPUT_URI.name) == "s3://b/runs/job-1/output"
        assert getattr(args, contract.HYPERPARAMETERS.name) == staged.hyperparameters_s3_uri
        # the job writes its own report and result straight to S3, beside the output prefix
        assert args.report == f"s3://b/runs/job-1/report/{contract.REPORT_FILENAME}"
        assert args.result_json == f"s3://b/runs/job-1/report/{contract.RESULT_FILENAME}"
        return
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs[contract.PROCESSING_INPUT_MODEL]["LocalPath"] == contract.CONTAINER_MODEL_DIR
    assert getattr(args, contract.MODEL.name) == contract.CONTAINER_MODEL_DIR
    output, report = request["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == contract.PROCESSING_OUTPUT_MODEL
    assert output["S3Output"]["LocalPath"] == contract.CONTAINER_OUTPUT_DIR
    assert getattr(args, contract.OUTPUT_DIR.name) == contract.CONTAINER_OUTPUT_DIR
    # the job's own report channel: its files in the report dir, uploaded beside (not into) the output prefix
    assert report["OutputName"] == contract.PROCESSING_OUTPUT_REPORT
    assert report["S3Output"] == {"S3Uri": "s3://b/runs/job-1/report", "LocalPath": contract.CONTAINER_REPORT_DIR,
                                  "S3UploadMode": "EndOfJob"}
    assert args.report == f"{contract.CONTAINER_REPORT_DIR}/{contract.REPORT_FILENAME}"
    assert args.result_json == f"{contract.CONTAINER_REPORT_DIR}/{contract.RESULT_FILENAME}"
    if with_hp:
        assert inputs[contract.PROCESSING_INPUT_HYPERPARAMETERS]["LocalPath"] == contract.CONTAINER_CONFIG_DIR
        assert getattr(args, contract.HYPERPARAMETERS.name) == contract.CONTAINER_CONFIG_DIR
    else:
        assert set(inputs) == {contract.PROCESSING_INPUT_MODEL}
        assert getattr(args, contract.HYPERPARAMETERS.name) is None
    # the processing paths are the ones the repack step searches when given no flags
    opt_ml = contract.DEFAULT_OPT_ML_ROOT
    assert str(contract.processing_model_dir()).replace(str(contract.opt_ml_root()), opt_ml) == \
        contract.CONTAINER_MODEL_DIR
    assert str(contract.processing_report_dir()).replace(str(contract.opt_ml_root()), opt_ml) == \
        contract.CONTAINER_REPORT_DIR


def test_cli_flags_cover_every_launch_config_field() -> None:
    import dataclasses

    from dummy_training.sagemaker.launcher import LaunchConfig

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["sagemaker"]
    dests = {a.dest for a in sub._actions}
    assert {f.name for f in dataclasses.fields(LaunchConfig)} <= dests
