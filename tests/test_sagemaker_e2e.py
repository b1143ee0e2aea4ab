"""End to end on moto: the launcher creates the job; the test plays SageMaker's part exactly as the recorded request
says (download each ProcessingInput to its LocalPath, run the entrypoint with the arguments, upload the output
LocalPath to its S3Uri); the launcher then delivers the repacked model. Request, container contract and outputs
fit together, or this fails."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from dummy_training import contract, sagemaker_job
from dummy_training.aws import parse_s3_uri
from dummy_training.sagemaker_job import LaunchConfig

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


class PlaySageMaker:
    """Runs a CreateProcessingJob request the way a SageMaker Processing instance would, on this machine."""

    def __init__(self, endpoint: str, root: Path) -> None:
        self.endpoint = endpoint
        self.root = root
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.ran: list[list[str]] = []

    def local(self, container_path: str) -> Path:
        assert container_path.startswith(contract.DEFAULT_OPT_ML_ROOT + "/"), container_path
        return self.root / container_path[len(contract.DEFAULT_OPT_ML_ROOT) + 1:]

    def __call__(self, params: dict[str, Any], **_kw: Any) -> None:
        for inp in params.get("ProcessingInputs", []):
            s3_input = inp["S3Input"]
            assert s3_input["S3DataType"] == "S3Prefix"
            bucket, prefix = parse_s3_uri(s3_input["S3Uri"])
            target = self.local(s3_input["LocalPath"])
            target.mkdir(parents=True, exist_ok=True)
            keys = [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
            assert keys, f"nothing staged at {s3_input['S3Uri']}"
            for key in keys:  # S3Prefix: the object's name relative to the prefix's "directory"
                rel = key[len(prefix.rsplit("/", 1)[0]) + 1:] if "/" in prefix else key
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, key, str(target / rel))
        outputs = params.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for out in outputs:
            self.local(out["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        app = params["AppSpecification"]
        args = [str(self.local(a)) if a.startswith(contract.DEFAULT_OPT_ML_ROOT + "/") else a
                for a in app["ContainerArguments"]]
        entry = app["ContainerEntrypoint"]
        assert entry[0] == contract.CONSOLE_SCRIPT
        cmd = [sys.executable, "-m", "dummy_training", *entry[1:], *args]
        self.ran.append(cmd)
        env = {**os.environ, contract.OPT_ML_ROOT_ENV: str(self.root), "AWS_ENDPOINT_URL": self.endpoint}
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        for out in outputs:  # S3UploadMode EndOfJob: the LocalPath's files under the S3Uri
            s3_output = out["S3Output"]
            bucket, prefix = parse_s3_uri(s3_output["S3Uri"])
            local_dir = self.local(s3_output["LocalPath"])
            for f in local_dir.rglob("*"):
                if f.is_file():
                    self.s3.upload_file(str(f), bucket, f"{prefix.rstrip('/')}/{f.relative_to(local_dir)}")


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
    clients = sagemaker_job.make_clients(cfg)
    play = PlaySageMaker(moto_endpoint, tmp_path / "opt-ml")
    clients.sagemaker.meta.events.register("provide-client-params.sagemaker.CreateProcessingJob", play)

    result = sagemaker_job.launch(cfg, clients=clients, sleep=lambda s: None)

    assert len(play.ran) == 1
    original = _members(model_dir / contract.MODEL_FILENAME)
    delivered = _members(Path(result.local_model_path or ""))
    assert json.loads(delivered.pop(contract.HYPERPARAMETERS_FILENAME)) == hp
    assert delivered == original
    assert result.model_s3_uri == f"s3://{bucket}/runs/{cfg.job_name}/output/{contract.MODEL_FILENAME}"
    key = parse_s3_uri(result.model_s3_uri)[1]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == Path(result.local_model_path).read_bytes()
