"""The ACK branch end to end under kfp.local: the launcher creates the ProcessingJob on the fake Kubernetes API
server; the test plays the ACK controller and SageMaker (the manifest's spec, mapped back to a CreateProcessingJob
request through botocore's model, is run by ``fake_sagemaker.PlaySageMaker``: staged inputs downloaded into a
temp root laid out like /opt/ml/processing, `dummy-training repack` run there, the output uploaded where the
manifest says); the launcher then delivers the model and the pipeline's check step opens it."""

# No ``from __future__ import annotations``: KFP reads the pipeline annotations at decoration time.

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import ack_reference
import pytest
from fake_kube import FakeKube
from fake_sagemaker import PlaySageMaker

from dummy_training import contract

ROLE = "arn:aws:iam::123456789012:role/dummy-training"


def _model_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("weights.bin")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"12345"))
    return buf.getvalue()


class PlayController:
    """On create: play the job the manifest describes; then report it Completed, as the controller would."""

    def __init__(self, player: PlaySageMaker) -> None:
        self.player = player
        self.specs: list[dict[str, Any]] = []

    def __call__(self, kube: FakeKube, _namespace: str, body: dict[str, Any]) -> None:
        self.specs.append(body["spec"])
        self.player(ack_reference.ack_to_request(body["spec"]))
        completed = ack_reference.fixture("readone__observed__completed.yaml")["status"]
        completed["ackResourceMetadata"]["arn"] = (
            f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{body['spec']['processingJobName']}")
        kube.statuses = [ack_reference.fixture("readone__observed__created.yaml")["status"], completed]


def test_kfp_local_ack_branch_runs_the_job_and_checks_the_model(s3, bucket: str, moto_endpoint: str,
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import dsl, local

    from dummy_training.kfp_components.ack import ack_repack

    s3.put_object(Bucket=bucket, Key="models/bert.tar.gz", Body=_model_bytes())
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.chdir(tmp_path)

    @dsl.pipeline(name="ack-branch")
    def pipeline(model_uri: str, hyperparameters_uri: str, hyperparameters_json: str, role_arn: str, image_uri: str,
                 s3_prefix: str):
        ack_repack(model_uri, hyperparameters_uri, hyperparameters_json, None, role_arn=role_arn,
                   image_uri=image_uri, s3_prefix=s3_prefix)

    with FakeKube() as kube:
        controller = PlayController(PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"))
        kube.before_post = controller
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", namespace="kubeflow")))
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
        pipeline(model_uri=f"s3://{bucket}/models/bert.tar.gz", hyperparameters_uri="",
                 hyperparameters_json='{"epochs": 4}', role_arn=ROLE, image_uri="img:1",
                 s3_prefix=f"s3://{bucket}/runs")
        methods = kube.methods()

    (spec,) = controller.specs
    name = spec["processingJobName"]
    assert name.startswith("dummy-training-")  # derived from the run and task ids
    assert "DELETE" not in methods
    # the model (its key is not model.tar.gz) was copied under the job's staging prefix, repacked by the played
    # job, delivered into the Output[Model] and opened by the check step
    assert spec["processingInputs"][0]["s3Input"]["s3URI"] == f"s3://{bucket}/runs/{name}/input/model/model.tar.gz"
    delivered = list((tmp_path / "root").rglob(contract.MODEL_FILENAME))
    assert len(delivered) == 1, delivered
    with tarfile.open(delivered[0]) as tar:
        assert json.load(tar.extractfile(contract.HYPERPARAMETERS_FILENAME)) == {"epochs": 4}  # type: ignore[arg-type]
    key = f"runs/{name}/output/{contract.MODEL_FILENAME}"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == delivered[0].read_bytes()
