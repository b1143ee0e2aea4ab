"""End to end on moto: the launcher creates the job; the test plays SageMaker's part exactly as the recorded request
says (download each ProcessingInput to its LocalPath, run the entrypoint with the arguments, upload the output
LocalPath to its S3Uri); the launcher then delivers the repacked model. Request, container contract and outputs
fit together, or this fails."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from fake_sagemaker import PlaySageMaker

from dummy_training import contract
from dummy_training.aws import parse_s3_uri
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker.launcher import LaunchConfig

ROLE = "arn:aws:iam::123456789012:role/dummy-training"


def _model_without_hyperparameters(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        data = os.urandom(4096)
        info = tarfile.TarInfo("weights.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.mark.parametrize("hp_kind", ["inline", "file", "s3"])
def test_launcher_request_container_and_outputs_fit(s3, bucket: str, moto_endpoint: str, tmp_path: Path,
                                                    hp_kind: str) -> None:
    model_dir = tmp_path / "in"
    model_dir.mkdir()
    _model_without_hyperparameters(model_dir / contract.MODEL_FILENAME)
    hp = {"epochs": 3, "lr": "0.01"}
    kw: dict[str, Any] = {}
    if hp_kind == "inline":
        kw["hyperparameters_json"] = json.dumps(hp)
    elif hp_kind == "file":
        (tmp_path / "hp.json").write_text(json.dumps(hp))
        kw["hyperparameters"] = str(tmp_path / "hp.json")
    else:
        s3.put_object(Bucket=bucket, Key="cfg/params.json", Body=json.dumps(hp).encode())
        kw["hyperparameters"] = f"s3://{bucket}/cfg/params.json"
    cfg = LaunchConfig(model=str(model_dir), role_arn=ROLE, image_uri="img:1", s3_prefix=f"s3://{bucket}/runs",
                       endpoint_url=moto_endpoint, region="us-east-1", job_name=f"e2e-{uuid.uuid4().hex[:10]}",
                       model_output_dir=str(tmp_path / "kfp-output"), **kw)
    clients = sagemaker_launcher.make_clients(cfg)
    play = PlaySageMaker(moto_endpoint, tmp_path / "opt-ml")
    clients.sagemaker.meta.events.register("provide-client-params.sagemaker.CreateProcessingJob", play)

    result = sagemaker_launcher.launch(cfg, clients=clients, sleep=lambda s: None)

    assert len(play.ran) == 1
    original = _members(model_dir / contract.MODEL_FILENAME)
    delivered = _members(Path(result.local_model_path or ""))
    assert json.loads(delivered.pop(contract.HYPERPARAMETERS_FILENAME)) == hp
    assert delivered == original
    assert result.model_s3_uri == f"s3://{bucket}/runs/{cfg.job_name}/output/{contract.MODEL_FILENAME}"
    key = parse_s3_uri(result.model_s3_uri)[1]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == Path(result.local_model_path).read_bytes()
