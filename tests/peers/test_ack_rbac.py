"""components/ack_dummy_training/rbac.yaml in a real kube-apiserver with RBAC authorization: KFP's
``pipeline-runner`` ServiceAccount may do what the ACK launcher does to ProcessingJobs in its namespace, and
nothing else; a denied launcher says so in one line (exit 3)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from control_plane import ControlPlane

from dummy_training import contract
from dummy_training.kfp.example_model import write_example_model

pytestmark = pytest.mark.peers

#: every verb the launcher uses (create, get; delete on SIGTERM/timeout) and the read-only ones the Role grants
#: for watch-style tooling (kubectl get -w)
NEEDED = ["create", "get", "list", "watch", "delete"]


@pytest.mark.parametrize("verb", NEEDED)
def test_the_runner_may_do_what_the_launcher_does(control_plane: ControlPlane, pipeline_runner, verb: str) -> None:
    assert control_plane.can_i(user=pipeline_runner.user, verb=verb, resource=contract.ACK_PLURAL,
                               group=contract.ACK_GROUP, namespace=pipeline_runner.namespace)


@pytest.mark.parametrize(("verb", "resource", "group", "namespace", "subresource"), [
    ("update", contract.ACK_PLURAL, contract.ACK_GROUP, "kubeflow", None),
    ("patch", contract.ACK_PLURAL, contract.ACK_GROUP, "kubeflow", None),
    ("patch", contract.ACK_PLURAL, contract.ACK_GROUP, "kubeflow", "status"),
    ("create", contract.ACK_PLURAL, contract.ACK_GROUP, "default", None),
    ("get", "trainingjobs", contract.ACK_GROUP, "kubeflow", None),
    ("delete", "configmaps", "", "kubeflow", None),
    ("get", "secrets", "", "kubeflow", None),
    ("list", "pods", "", "kubeflow", None),
])
def test_the_runner_may_do_nothing_else(control_plane: ControlPlane, pipeline_runner, verb: str, resource: str,
                                        group: str, namespace: str, subresource: str | None) -> None:
    assert not control_plane.can_i(user=pipeline_runner.user, verb=verb, resource=resource, group=group,
                                   namespace=namespace, subresource=subresource)


def test_the_token_is_the_service_accounts(control_plane: ControlPlane, pipeline_runner) -> None:
    from kubernetes import client

    review = client.AuthenticationV1Api(control_plane.api_client()).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=pipeline_runner.token)))
    assert review.status.authenticated
    assert review.status.user.username == pipeline_runner.user


def test_a_denied_launcher_exits_3_in_one_line(control_plane: ControlPlane, pipeline_runner, bucket,
                                               moto_endpoint, tmp_path) -> None:
    model = write_example_model(tmp_path / contract.MODEL_FILENAME, with_hyperparameters=True)
    res = subprocess.run(
        [sys.executable, "-m", "dummy_training", "ack", "run", "--model", str(model), "--s3-prefix",
         f"s3://{bucket}/runs", "--role-arn", "arn:aws:iam::123456789012:role/R", "--image-uri", "img:1",
         "--job-name", "denied-elsewhere", "--namespace", "default", "--endpoint-url", moto_endpoint,
         "--kubeconfig", str(pipeline_runner.kubeconfig)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 3, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "denied access (403)" in last and "rbac.yaml" in last
    assert f'User "{pipeline_runner.user}" cannot get resource "{contract.ACK_PLURAL}"' in last
    assert "Traceback" not in res.stderr
