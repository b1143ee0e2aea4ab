"""The ACK KFP component: its interface, and a kfp.local run against the fake Kubernetes API server and moto S3;
plus the RBAC manifest shipped next to it."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import ack_reference
import pytest
import yaml
from fake_kube import FakeKube

from dummy_training import contract
from dummy_training.sagemaker.report import console_url, logs_console_url

REPO = Path(__file__).resolve().parents[2]
COMPONENT_DIR = REPO / "components" / "ack_dummy_training"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
ARN = "arn:aws:sagemaker:us-west-2:123456789012:processing-job/example-processing-job"


def test_component_interface_matches_the_sagemaker_launcher_and_contract() -> None:
    import dataclasses

    from dummy_training.kfp.components.ack import COMPONENTS, ack_dummy_training
    from dummy_training.sagemaker.launcher import LaunchConfig

    assert {"ack_dummy_training": ack_dummy_training} == COMPONENTS
    spec = ack_dummy_training.component_spec
    assert set(spec.outputs) == {"output_model", contract.OUTPUT_MODEL_S3_URI, contract.OUTPUT_JOB_ARN,
                                 contract.OUTPUT_REPORT, contract.OUTPUT_METRICS}
    assert spec.outputs["output_model"].type.startswith("system.Model")
    # every job input is a LaunchConfig field of the same name (the SageMaker launcher's vocabulary)
    launcher_fields = {f.name for f in dataclasses.fields(LaunchConfig)}
    ack_only = {"namespace", "download_model"}
    assert set(spec.inputs) - ack_only <= launcher_fields
    for param in (contract.MODEL, contract.HYPERPARAMETERS, contract.HYPERPARAMETERS_JSON):
        assert param.name in spec.inputs
    assert spec.inputs["instance_type"].default == contract.DEFAULT_INSTANCE_TYPE
    assert spec.inputs["volume_size_gb"].default == contract.DEFAULT_VOLUME_SIZE_GB
    assert spec.inputs["max_runtime_seconds"].default == contract.DEFAULT_MAX_RUNTIME_SECONDS
    assert spec.inputs["instance_count"].default == contract.DEFAULT_INSTANCE_COUNT
    # the committed YAML carries the docstring's Args as input descriptions
    root = yaml.safe_load((COMPONENT_DIR / "component.yaml").read_text())["root"]
    described = root["inputDefinitions"]["parameters"]
    assert set(described) == set(spec.inputs)
    assert all(p.get("description") for p in described.values())


def _model_archive(path: Path) -> Path:
    src = path.parent / "weights.bin"
    src.write_bytes(b"\0" * 64)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="weights.bin")
    return path


def test_without_download_the_output_models_uri_is_the_s3_object(tmp_path, monkeypatch, s3, bucket,
                                                                  moto_endpoint) -> None:
    from kfp import local

    from dummy_training.kfp.components.ack import ack_dummy_training

    name = "dummy-training-run-43-repack"
    out_key = f"runs/{name}/output/model.tar.gz"
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=b"m")
    s3.put_object(Bucket=bucket, Key=out_key, Body=b"the repacked model")  # what the job would write
    with FakeKube() as kube:
        kube.statuses = [ack_reference.fixture("completed.yaml")["status"]]
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", namespace="team-ml")))
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
        task = ack_dummy_training(
            model=f"s3://{bucket}/in/model.tar.gz", role_arn=ROLE, image_uri="dummy-training:test",
            s3_prefix=f"s3://{bucket}/runs", hyperparameters_json='{"lr": 0.1}', job_name=name,
            endpoint_url=moto_endpoint, download_model=False)
    artifact = task.outputs["output_model"]
    assert artifact.uri == f"s3://{bucket}/{out_key}"  # the model.tar.gz object, not a prefix
    assert artifact.metadata[contract.OUTPUT_MODEL_S3_URI] == artifact.uri
    assert not list((tmp_path / "root").glob("**/output_model")), "nothing downloaded"


def test_kfp_local_run_creates_resource_and_delivers_outputs(tmp_path, monkeypatch, s3, bucket,
                                                            moto_endpoint) -> None:
    from kfp import local

    from dummy_training.kfp.components.ack import ack_dummy_training

    model = _model_archive(tmp_path / "model.tar.gz")
    name = "dummy-training-run-42-repack"
    out_key = f"runs/{name}/output/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=out_key, Body=b"the repacked model")  # what the job would write
    with FakeKube() as kube:
        kube.statuses = [ack_reference.fixture("in_progress.yaml")["status"],
                         ack_reference.fixture("completed.yaml")["status"]]
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", namespace="team-ml")))
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
        task = ack_dummy_training(
            model=str(model), role_arn=ROLE, image_uri="dummy-training:test", s3_prefix=f"s3://{bucket}/runs",
            hyperparameters_json='{"lr": 0.1}', job_name=name, endpoint_url=moto_endpoint,
            environment={"LOG_LEVEL": "debug"}, tags={"team": "ml"},
            subnets=["subnet-1", "subnet-2"], security_group_ids=["sg-1"])
        posts = [body for method, _p, body in kube.requests if method == "POST"]
    assert task.outputs[contract.OUTPUT_MODEL_S3_URI] == f"s3://{bucket}/{out_key}"
    assert task.outputs[contract.OUTPUT_JOB_ARN] == ARN
    artifact = task.outputs["output_model"]
    assert Path(artifact.path).read_bytes() == b"the repacked model"  # the artifact is the archive itself
    assert artifact.metadata[contract.OUTPUT_JOB_ARN] == ARN and artifact.metadata["job_name"] == name
    assert artifact.metadata["sha256"] == hashlib.sha256(b"the repacked model").hexdigest()
    assert artifact.metadata["size"] == len(b"the repacked model")
    # the report (Output[Markdown]) a person reads in the KFP UI, and the metrics
    report = Path(task.outputs[contract.OUTPUT_REPORT].path).read_text()
    assert report.startswith("# dummy-training on ACK: Completed")
    for row in (f"| Job name | {name} |", f"| ARN | {ARN} |", "| Status | Completed |",
                f"| Kubernetes resource | processingjobs.sagemaker.services.k8s.aws/{name} in namespace team-ml |"):
        assert row in report, row
    assert f"({console_url('us-west-2', name)})" in report and f"({logs_console_url('us-west-2', name)})" in report
    metrics = task.outputs[contract.OUTPUT_METRICS].metadata
    assert metrics["output_bytes"] == len(b"the repacked model") and metrics["reused"] == 0.0

    (body,) = posts
    assert ack_reference.errors(body) == []
    assert body["metadata"]["namespace"] == "team-ml"
    spec = body["spec"]
    assert spec["environment"] == {"LOG_LEVEL": "debug"}
    assert spec["tags"] == [{"key": "team", "value": "ml"}]
    assert spec["networkConfig"]["vpcConfig"] == {"securityGroupIDs": ["sg-1"], "subnets": ["subnet-1", "subnet-2"]}
    (hp_uri,) = [i["s3Input"]["s3URI"] for i in spec["processingInputs"] if i["inputName"] == "config"]
    assert hp_uri.startswith(f"s3://{bucket}/runs/{name}/input/config/sha256-")  # named by its content
    hp = s3.get_object(Bucket=bucket, Key=hp_uri.split("/", 3)[3])["Body"].read()
    assert json.loads(hp) == {"lr": 0.1}


# ---------------------------------------------------------------------------------------------------- RBAC
def _rbac() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((COMPONENT_DIR / "rbac.yaml").read_text()) if d]


def test_rbac_grants_exactly_the_launcher_verbs_on_processingjobs() -> None:
    docs = {d["kind"]: d for d in _rbac()}
    assert set(docs) == {"Role", "RoleBinding"}
    role, binding = docs["Role"], docs["RoleBinding"]
    assert role["apiVersion"] == binding["apiVersion"] == "rbac.authorization.k8s.io/v1"
    assert role["rules"] == [{
        "apiGroups": [contract.ACK_GROUP],
        "resources": [contract.ACK_PLURAL],
        "verbs": ["create", "get", "list", "watch", "delete"],
    }]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    # the runner's own namespace only (a Role, not a ClusterRole), and the binding in the same namespace
    ns = role["metadata"]["namespace"]
    assert binding["metadata"]["namespace"] == ns == "kubeflow"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": ns}]


@pytest.mark.parametrize("verb", ["create", "get", "delete"])
def test_rbac_covers_every_call_the_launcher_makes(verb: str) -> None:
    (role,) = [d for d in _rbac() if d["kind"] == "Role"]
    assert any(verb in rule["verbs"] and contract.ACK_PLURAL in rule["resources"] for rule in role["rules"])
