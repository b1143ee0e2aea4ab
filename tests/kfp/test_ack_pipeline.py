"""The pipeline's ACK branch end to end under kfp.local. The launcher creates the ProcessingJob on the fake
Kubernetes API server; the test plays the ACK controller and SageMaker: the manifest's spec, mapped back to a
CreateProcessingJob request through botocore's model, is run by ``fake_sagemaker.PlaySageMaker`` (staged inputs
downloaded into a temp root laid out like /opt/ml/processing, `dummy-training repack` run there, the output
uploaded where the manifest says); the launcher then delivers the model and the pipeline's check step opens it."""

# No ``from __future__ import annotations``: KFP reads the pipeline annotations at decoration time.

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import ack_reference
import pytest
from archives import build_tar, file, gz
from fake_kube import FakeKube
from fake_sagemaker import PlaySageMaker

from dummy_training import contract

ROLE = "arn:aws:iam::123456789012:role/dummy-training"


class PlayController:
    """On create: play the job the manifest describes; then report it Completed, as the controller would."""

    def __init__(self, player: PlaySageMaker) -> None:
        self.player = player
        self.specs: list[dict[str, Any]] = []

    def __call__(self, kube: FakeKube, _namespace: str, body: dict[str, Any]) -> None:
        self.specs.append(body["spec"])
        self.player(ack_reference.ack_to_request(body["spec"]))
        completed = ack_reference.fixture("completed.yaml")["status"]
        completed["ackResourceMetadata"]["arn"] = (
            f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{body['spec']['processingJobName']}")
        kube.statuses = [ack_reference.fixture("in_progress.yaml")["status"], completed]


def test_compiled_pipeline_ack_branch_runs_the_job_and_checks_the_model(s3, bucket: str, moto_endpoint: str,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed pipeline YAML with backend=ack: launcher, played controller and job, download, check."""
    from dummy_training.kfp.demo import packaged_pipeline, run_pipeline

    s3.put_object(Bucket=bucket, Key="models/bert.tar.gz", Body=gz(build_tar([file("weights.bin", b"12345")])))
    s3.put_object(Bucket=bucket, Key="cfg/hp.json", Body=b'{"epochs": 4}')
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    with FakeKube() as kube:
        controller = PlayController(PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"))
        kube.before_post = controller
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", namespace="kubeflow")))
        result = run_pipeline(packaged_pipeline("dummy_training_pipeline.yaml"), tmp_path / "out", {
            "backend": "ack", "model_uri": f"s3://{bucket}/models/bert.tar.gz",
            "hyperparameters_uri": f"s3://{bucket}/cfg/hp.json", "role_arn": ROLE, "image_uri": "img:1",
            "s3_prefix": f"s3://{bucket}/runs"}, echo=io.StringIO())
        methods = kube.methods()
        created = list(kube.objects)

    (spec,) = controller.specs
    name = spec["processingJobName"]
    assert name.startswith("dummy-training-")  # derived from the run and task ids
    assert created == [("kubeflow", name)] and "DELETE" not in methods
    inputs = {i["inputName"]: i["s3Input"]["s3URI"] for i in spec["processingInputs"]}
    # both inputs were copied under the job's staging prefix (their keys had other names), to a key named by the
    # source URI's hash
    def source(uri: str) -> str:
        return "s3-" + hashlib.sha256(uri.encode()).hexdigest()[:16]

    assert inputs == {contract.PROCESSING_INPUT_MODEL: f"s3://{bucket}/runs/{name}/input/model/"
                                                       f"{source(f's3://{bucket}/models/bert.tar.gz')}/model.tar.gz",
                      contract.PROCESSING_INPUT_HYPERPARAMETERS: f"s3://{bucket}/runs/{name}/input/config/"
                      f"{source(f's3://{bucket}/cfg/hp.json')}/hyperparameters.json"}
    # the played job's output was delivered into the Output[Model] and read by the check step
    assert result.checked_hyperparameters == {"epochs": 4}
    with tarfile.open(result.output) as tar:
        assert json.load(tar.extractfile(contract.HYPERPARAMETERS_FILENAME)) == {"epochs": 4}  # type: ignore[arg-type]
    key = f"runs/{name}/output/{contract.MODEL_FILENAME}"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == result.output.read_bytes()
    assert result.metadata[contract.OUTPUT_MODEL_S3_URI] == f"s3://{bucket}/{key}"
    assert result.metadata[contract.OUTPUT_JOB_ARN].endswith(f"processing-job/{name}")
    # the task's report: the job, then the job's own repack report (written by the played job beside its output)
    report = result.report_path.read_text()
    assert report.startswith("# dummy-training on ACK: Completed")
    assert "The job's repack: **injected** (its own report is below)." in report
    assert "\n## dummy-training repack: hyperparameters.json injected\n" in report
    assert "| 1 | weights.bin | file | 5 bytes |" in report
    assert result.metrics["members"] == 2 and result.metrics["injected"] == 1  # weights.bin + the injected file
