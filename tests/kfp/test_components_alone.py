"""Each committed ``components/<name>/component.yaml`` run alone under ``kfp.local``, as a user loads and runs one.

The components need ``kfp>=2.15,<3`` at run time (setup.py's ``[kfp]`` extra): this file runs in the default
suite with the pinned kfp, and ``.ci/kfp-oldest.sh`` runs it again in a venv with the oldest supported kfp
(2.15.x). The runner is ``SubprocessRunner(use_venv=False)``: the task runs with this interpreter, where the
package is installed. The pipelines (``dsl.If``/``Elif``) are not run here: kfp.local runs their branches right
from kfp 2.17 on (see ``dummy_training.kfp.demo``).
"""

# no `from __future__ import annotations`: kfp reads the pipeline function's annotations as types

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
from fake_sagemaker import FakeSageMaker

from dummy_training import contract

kfp = pytest.importorskip("kfp")
from kfp import components, dsl, local  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
MODEL = gz(build_tar([file("model/weights.bin", b"12345"), file("model/config.json", b"{}")]))
HP = '{"lr": 0.1}'

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning",
                                        "ignore:.*have no effect in the current local runner")


def load(name: str) -> Any:
    return components.load_component_from_file(str(REPO / "components" / name / "component.yaml"))


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    root = tmp_path / "pipeline_root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    return root


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


#: kfp.local before kfp 2.17 needs every artifact input of a task given, the optional ones too (its
#: ``executor_input_utils`` looks each one up): there ``dummy_training`` runs with ``hyperparameters`` given.
KFP_LOCAL_OPTIONAL_ARTIFACTS = tuple(int(p) for p in kfp.__version__.split(".")[:2]) >= (2, 17)


@pytest.mark.parametrize("hp_as", ["artifact", pytest.param("json", marks=pytest.mark.skipif(
    not KFP_LOCAL_OPTIONAL_ARTIFACTS, reason=f"kfp.local {kfp.__version__} needs every artifact input given"))])
def test_dummy_training_repacks_an_imported_model(tmp_path: Path, runner: Path, hp_as: str) -> None:
    """``dummy_training`` takes the model (and a hyperparameters file) as artifacts: a one-step pipeline imports
    them first (no condition)."""
    model = tmp_path / "in" / contract.MODEL_FILENAME
    model.parent.mkdir()
    model.write_bytes(MODEL)
    hp_file = tmp_path / "in" / contract.HYPERPARAMETERS_FILENAME
    hp_file.write_text(HP)
    repack = load("dummy_training")

    @dsl.pipeline(name="alone-artifact")
    def with_file(model_uri: str, hp_uri: str) -> dsl.Model:
        imported = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
        hp = dsl.importer(artifact_uri=hp_uri, artifact_class=dsl.Artifact, reimport=False)
        return repack(model=imported.output, hyperparameters=hp.output).outputs[contract.OUTPUT_MODEL]

    @dsl.pipeline(name="alone-json")
    def with_json(model_uri: str, hp_uri: str) -> dsl.Model:
        imported = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
        return repack(model=imported.output, hyperparameters_json=HP).outputs[contract.OUTPUT_MODEL]

    task = (with_file if hp_as == "artifact" else with_json)(model_uri=str(model), hp_uri=str(hp_file))
    got = members(Path(task.output.path).read_bytes())
    assert json.loads(got[contract.HYPERPARAMETERS_FILENAME]) == {"lr": 0.1}
    assert got["model/weights.bin"] == b"12345"


def test_dummy_training_s3_repacks_s3_to_s3(runner: Path, s3, bucket: str, moto_endpoint: str) -> None:  # noqa: ANN001
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=MODEL)
    task = load("dummy_training_s3")(model=f"s3://{bucket}/in/model.tar.gz", output_uri=f"s3://{bucket}/out/",
                                     hyperparameters_json=HP, endpoint_url=moto_endpoint)
    assert task.outputs[contract.OUTPUT_MODEL_S3_URI] == f"s3://{bucket}/out/model.tar.gz"
    body = s3.get_object(Bucket=bucket, Key="out/model.tar.gz")["Body"].read()
    assert json.loads(members(body)[contract.HYPERPARAMETERS_FILENAME]) == {"lr": 0.1}
    assert task.outputs[contract.OUTPUT_MODEL].metadata["decision"] == contract.DECISION_INJECTED


def test_sagemaker_dummy_training_delivers_the_jobs_output(runner: Path, s3, bucket: str, moto_endpoint: str,  # noqa: ANN001
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    name = "alone-sagemaker"
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=MODEL)
    s3.put_object(Bucket=bucket, Key=f"runs/{name}/output/model.tar.gz", Body=b"the repacked model")
    fake = FakeSageMaker(running_status="Completed")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # S3 and logs: moto; SageMaker: the fake
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", fake.start())
    try:
        task = load("sagemaker_dummy_training")(
            model=f"s3://{bucket}/in/model.tar.gz", role_arn=ROLE, image_uri="img:1", s3_prefix=f"s3://{bucket}/runs",
            hyperparameters_json=HP, job_name=name, region="us-east-1")
    finally:
        fake.stop()
    assert [op for op, _ in fake.calls].count("CreateProcessingJob") == 1
    assert task.outputs[contract.OUTPUT_MODEL_S3_URI] == f"s3://{bucket}/runs/{name}/output/model.tar.gz"
    artifact = task.outputs[contract.OUTPUT_MODEL]
    assert Path(artifact.path).read_bytes() == b"the repacked model"
    assert artifact.metadata["sha256"] == hashlib.sha256(b"the repacked model").hexdigest()


def test_ack_dummy_training_delivers_the_jobs_output(tmp_path: Path, runner: Path, s3, bucket: str,  # noqa: ANN001
                                                     moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "alone-ack"
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=MODEL)
    s3.put_object(Bucket=bucket, Key=f"runs/{name}/output/model.tar.gz", Body=b"the repacked model")
    with FakeKube() as kube:
        kube.statuses = [ack_reference.fixture("completed.yaml")["status"]]
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", namespace="team-ml")))
        task = load("ack_dummy_training")(
            model=f"s3://{bucket}/in/model.tar.gz", role_arn=ROLE, image_uri="img:1", s3_prefix=f"s3://{bucket}/runs",
            hyperparameters_json=HP, job_name=name, endpoint_url=moto_endpoint)
        posts = [body for method, _p, body in kube.requests if method == "POST"]
    (body,) = posts
    assert body["metadata"]["namespace"] == "team-ml" and ack_reference.errors(body) == []
    assert task.outputs[contract.OUTPUT_MODEL_S3_URI] == f"s3://{bucket}/runs/{name}/output/model.tar.gz"
    assert Path(task.outputs[contract.OUTPUT_MODEL].path).read_bytes() == b"the repacked model"
