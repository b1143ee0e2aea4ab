"""The launcher pods of the node tier (tests/peers/test_node_launchers.py), checked without a node: the executor
input and command line against KFP's own SDK, and each pod spec against the real kube-apiserver (server-side dry
run, strict field validation), and RBAC for the two ServiceAccounts the pods run as."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from control_plane import ControlPlane
from kfp_pod import AWS_SECRET, CASES, MISSING_SECRET, NO_RBAC_SA, RUNNER_SA, case_pod
from kfp_task import SCRATCH_VOLUMES, component_yaml, local_path

from dummy_training import contract
from dummy_training.kfp.components import DEFAULT_IMAGE
from dummy_training.kfp.components import task_settings as ts

pytestmark = pytest.mark.peers

def pods(case: str) -> tuple[Any, dict[str, Any]]:
    return case_pod(case, image=DEFAULT_IMAGE, bucket="bucket", s3_endpoint="http://10.217.0.1:9000",
                    sagemaker_endpoint="http://10.217.0.1:9001", run_id="0b9e3c1e-5f0e-4d3c-9a51-3f1d2c0e7a10")


@pytest.fixture(scope="module")
def accounts(control_plane: ControlPlane, pipeline_runner: Any) -> ControlPlane:
    """``pipeline-runner`` with the component's RBAC, and ``NO_RBAC_SA`` without, in ``kubeflow``."""
    control_plane.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": NO_RBAC_SA, "namespace": pipeline_runner.namespace}})
    return control_plane


def test_executor_input_as_the_driver_writes_it() -> None:
    task, _ = pods("ack")
    compiled = yaml.safe_load(component_yaml("ack_dummy_training").read_text())
    (executor,) = compiled["deploymentSpec"]["executors"].values()
    command, args = executor["container"]["command"], executor["container"]["args"]
    assert task.argv[:len(command)] == command
    got_args = task.argv[len(command):]
    assert [a for a in got_args if a != got_args[1]] == [a for a in args if a != "{{$}}"]
    executor_input = json.loads(got_args[args.index("{{$}}")])
    assert executor_input == task.executor_input
    values = executor_input["inputs"]["parameterValues"]
    assert values["model"] == "s3://bucket/in/model.tar.gz"
    assert values["instance_count"] == 1 and isinstance(values["instance_count"], int)  # protojson: no 1.0
    assert values["download_model"] is True and values["namespace"] == ""
    assert "environment" not in values and "subnets" not in values  # optional, no default: left out
    outputs = executor_input["outputs"]
    root = task.task_root
    assert root.startswith("minio://mlpipeline/v2/artifacts/dummy-training-pipeline/0b9e3c1e-")
    assert root.split("/")[-2] == "ack-dummy-training"
    assert {n: a["artifacts"][0]["uri"] for n, a in outputs["artifacts"].items()} == {
        n: f"{root}/{n}" for n in ("metrics", "output_model", "report")}
    assert outputs["parameters"] == {n: {"outputFile": f"/tmp/kfp/outputs/{n}"} for n in ("job_arn", "model_s3_uri")}
    assert outputs["outputFile"] == local_path(root) + "/output_metadata.json"


def test_local_paths_are_the_sdks() -> None:
    from kfp import dsl

    for uri in ("minio://mlpipeline/v2/artifacts/p/r/t/s/output_model", "s3://b/k/m", "gs://b/k/m"):
        assert local_path(uri) == dsl.Model(uri=uri).path
    # and every one of them is on a scratch volume of the executor pod
    assert {local_path(u).split("/")[1] for u in ("minio://a", "s3://a", "gs://a")} <= {
        p.strip("/") for p in SCRATCH_VOLUMES.values()}


@pytest.mark.parametrize("case", CASES)
def test_the_pod_is_admitted_as_kfp_writes_it(accounts: ControlPlane, case: str) -> None:
    from kubernetes import client

    task, pod = pods(case)
    core = client.CoreV1Api(accounts.api_client())
    got = accounts.api_client().sanitize_for_serialization(core.create_namespaced_pod(
        "kubeflow", pod, dry_run="All", field_validation="Strict"))
    spec = got["spec"]
    (main,) = spec["containers"]
    assert main["command"] + main["args"] == task.argv
    assert main["image"] == DEFAULT_IMAGE and main["imagePullPolicy"] == ts.IMAGE_PULL_POLICY
    assert "runAsUser" not in main["securityContext"] and "runAsUser" not in spec["securityContext"]
    resources = ts.REPACK_RESOURCES if case == "s3" else ts.SMALL_RESOURCES
    assert main["resources"] == {"requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
                                 "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit}}
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in main["env"]
                   if "secretKeyRef" in e.get("valueFrom", {})}
    secret = MISSING_SECRET if case.endswith("no-secret") else AWS_SECRET
    assert secret_refs == {env: {"name": secret, "key": key, "optional": True}
                           for key, env in ts.AWS_SECRET_KEYS.items()}
    # the account; its token is projected by the ServiceAccount admission plugin, which this control plane
    # leaves off as envtest does (the node tier's apiserver has it: test_node_launchers reads the token in-cluster)
    assert spec["serviceAccountName"] == (NO_RBAC_SA if case.endswith("no-rbac") else RUNNER_SA)
    assert {v["name"] for v in spec["volumes"]} >= set(SCRATCH_VOLUMES)


def test_only_the_runner_may_create_processing_jobs(accounts: ControlPlane) -> None:
    for sa, allowed in ((RUNNER_SA, True), (NO_RBAC_SA, False)):
        user = f"system:serviceaccount:kubeflow:{sa}"
        assert accounts.can_i(user=user, verb="create", resource=contract.ACK_PLURAL, group=contract.ACK_GROUP,
                              namespace="kubeflow") is allowed
