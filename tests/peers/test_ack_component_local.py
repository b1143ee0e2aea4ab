"""The ACK KFP component (components/ack_dummy_training) under kfp.local, end to end against the real
kube-apiserver as KFP's ``pipeline-runner`` (TokenRequest token, rbac.yaml): the job runs the engine for real
(ack_peer.StandInController writes the status) and the component's outputs are the delivered model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ack_peer import StandInController
from fake_sagemaker import FakeSageMaker, PlaySageMaker
from test_ack_run import HP, members, model_archive, resource

from dummy_training import contract

pytestmark = pytest.mark.peers


def test_kfp_local_component_runs_the_job_and_delivers(control_plane, pipeline_runner, s3, bucket, moto_endpoint,
                                                      tmp_path: Path, monkeypatch) -> None:
    from kfp import local

    from dummy_training.kfp.components.ack import ack_dummy_training

    model = tmp_path / "in" / contract.MODEL_FILENAME
    original = model_archive(model)
    monkeypatch.setenv("KUBECONFIG", str(pipeline_runner.kubeconfig))
    sm = FakeSageMaker(on_create=PlaySageMaker(moto_endpoint, tmp_path / "opt-ml"), background=True)
    with StandInController(control_plane, pipeline_runner.namespace, sm, match="run-kfp"):
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
        task = ack_dummy_training(
            model=str(model), role_arn="arn:aws:iam::123456789012:role/SageMakerExecution",
            image_uri="dummy-training:test", s3_prefix=f"s3://{bucket}/runs", hyperparameters_json=json.dumps(HP),
            job_name="dummy-training-run-kfp-repack", endpoint_url=moto_endpoint, region="us-east-1")
    obj = resource(control_plane, pipeline_runner.namespace, "run-kfp")
    assert obj is not None and obj["status"]["processingJobStatus"] == "Completed"
    assert task.outputs[contract.OUTPUT_JOB_ARN] == obj["status"]["ackResourceMetadata"]["arn"]
    delivered = members(Path(task.outputs["output_model"].path))
    assert json.loads(delivered.pop(contract.HYPERPARAMETERS_FILENAME)) == HP
    assert delivered == original
    uri = task.outputs[contract.OUTPUT_MODEL_S3_URI]
    assert s3.get_object(Bucket=bucket, Key=uri.split("/", 3)[3])["Body"].read() == (
        Path(task.outputs["output_model"].path)).read_bytes()
    report = Path(task.outputs[contract.OUTPUT_REPORT].path).read_text()
    assert report.startswith("# dummy-training on ACK: Completed")
    assert f"in namespace {pipeline_runner.namespace} |" in report
