"""The ACK controller's ProcessingJob CRD in a real kube-apiserver: what `dummy-training ack manifest` writes is
accepted with strict field validation and stored exactly as sent (nothing pruned), an unknown field is rejected
(strict) or pruned (the server's default), and every status the launcher's tests assume is one the server
accepts on the status subresource and hands back unchanged."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import ack_reference
import pytest
import yaml
from ack_peer import processing_job_crd
from control_plane import ControlPlane

from dummy_training import contract
from dummy_training.ack import launcher as ack_launcher

pytestmark = pytest.mark.peers

NS = "manifests"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0"


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane, ack_crd: str) -> Any:
    from kubernetes import client

    control_plane.create_namespace(NS)
    return client.CustomObjectsApi(control_plane.api_client())


def cli_manifest(job_name: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "dummy_training", "ack", "manifest", "--model", "s3://bucket/in/model.tar.gz",
         "--hyperparameters", "s3://bucket/in/hyperparameters.json", "--s3-prefix", "s3://bucket/runs",
         "--role-arn", ROLE, "--image-uri", IMAGE, "--job-name", job_name, "--namespace", NS, *extra],
        capture_output=True, text=True, check=True)
    return yaml.safe_load(out.stdout)


def create(api: Any, manifest: dict[str, Any], validation: str = "Strict") -> dict[str, Any]:
    return api.create_namespaced_custom_object(contract.ACK_GROUP, contract.ACK_VERSION, NS, contract.ACK_PLURAL,
                                               manifest, field_validation=validation)


def read(api: Any, name: str) -> dict[str, Any]:
    return api.get_namespaced_custom_object(contract.ACK_GROUP, contract.ACK_VERSION, NS, contract.ACK_PLURAL,
                                            name)


def test_the_served_crd_is_the_controllers(control_plane: ControlPlane, ack_crd: str) -> None:
    from kubernetes import client

    served = client.ApiextensionsV1Api(control_plane.api_client()).read_custom_resource_definition(ack_crd)
    served = control_plane.api_client().sanitize_for_serialization(served)
    sent = processing_job_crd()["spec"]
    (version,) = served["spec"]["versions"]
    assert version["schema"] == sent["versions"][0]["schema"]  # structural: the server kept it whole
    assert version["subresources"] == {"status": {}}
    assert served["spec"]["names"]["plural"] == contract.ACK_PLURAL
    assert served["status"]["acceptedNames"]["kind"] == contract.ACK_KIND


@pytest.mark.parametrize("extra", [
    (),
    ("--environment", "LOG_LEVEL=debug", "--tags", "team=ml", "--subnets", "subnet-1,subnet-2",
     "--security-group-ids", "sg-1", "--volume-kms-key-id", "alias/vol", "--output-kms-key-id", "alias/out",
     "--enable-network-isolation", "--enable-inter-container-traffic-encryption", "--instance-count", "2",
     "--label", "team=ml", "--annotation", "note=peers"),
], ids=["defaults", "every-option"])
def test_cli_manifest_is_accepted_strictly_and_stored_as_sent(api: Any, extra: tuple[str, ...]) -> None:
    job = f"peers-manifest-{len(extra)}"
    manifest = cli_manifest(job, *extra)
    created = create(api, copy.deepcopy(manifest))
    stored = read(api, manifest["metadata"]["name"])
    assert stored["spec"] == manifest["spec"] == created["spec"]
    for key in ("labels", "annotations"):
        assert (stored["metadata"].get(key) or {}) == (manifest["metadata"].get(key) or {})
    assert "status" not in stored


def test_the_hand_written_manifest_is_accepted_strictly(api: Any) -> None:
    manifest = ack_reference.load("processing-job.yaml")
    manifest["metadata"] = {"name": "hand-written", "namespace": NS}
    create(api, copy.deepcopy(manifest))
    assert read(api, "hand-written")["spec"] == manifest["spec"]


def test_an_unknown_field_is_rejected_strictly_and_pruned_by_default(api: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    manifest = cli_manifest("peers-unknown-field")
    manifest["spec"]["processingResources"]["clusterConfig"]["instanceTypo"] = "ml.m5.large"
    with pytest.raises(ApiException) as rejected:
        create(api, copy.deepcopy(manifest))
    assert rejected.value.status == 400
    status = json.loads(rejected.value.body)
    assert status["reason"] == "BadRequest"
    assert status["message"] == ('ProcessingJob in version "v1alpha1" cannot be handled as a ProcessingJob: '
                                 'strict decoding error: unknown field '
                                 '"spec.processingResources.clusterConfig.instanceTypo"')
    # what the launcher's translate_api_error makes of it: one line, exit code 2
    err = ack_launcher.translate_api_error(rejected.value, "create it")
    assert err.exit_code == 2 and "instanceTypo" in str(err) and "\n" not in str(err)
    # The server's default (no fieldValidation: Warn) stores it with the field silently pruned.
    created = create(api, copy.deepcopy(manifest), validation="Warn")
    assert "instanceTypo" not in created["spec"]["processingResources"]["clusterConfig"]
    assert read(api, "peers-unknown-field")["spec"]["processingResources"] == {
        "clusterConfig": {k: v for k, v in manifest["spec"]["processingResources"]["clusterConfig"].items()
                          if k != "instanceTypo"}}


def test_the_launcher_creates_strictly(api: Any) -> None:
    """A manifest with a field the installed CRD does not know (an older controller, a typo) fails the launch
    with the field named, instead of running a job without it."""
    from kubernetes.client.exceptions import ApiException

    manifest = cli_manifest("peers-launcher-strict")
    manifest["spec"]["processingResources"]["clusterConfig"]["instanceTypo"] = "ml.m5.large"
    resource = ack_launcher.ProcessingJobResource(api, NS, manifest["metadata"]["name"])
    with pytest.raises(ApiException) as rejected:
        resource.create(manifest)
    err = ack_launcher.translate_api_error(rejected.value, f"create {resource.describe()}")
    assert err.exit_code == 2
    assert 'unknown field "spec.processingResources.clusterConfig.instanceTypo"' in str(err)
    assert resource.get() is None


@pytest.mark.parametrize("fixture", ack_reference.fixture_names())
def test_every_status_the_launcher_reads_is_one_the_server_stores(api: Any, fixture: str) -> None:
    name = f"status-{fixture.removesuffix('.yaml').replace('_', '-')}"
    manifest = cli_manifest(name)
    create(api, manifest)
    want = ack_reference.fixture(fixture)["status"]
    api.patch_namespaced_custom_object_status(contract.ACK_GROUP, contract.ACK_VERSION, NS, contract.ACK_PLURAL,
                                              name, {"status": want}, field_validation="Strict")
    stored = read(api, name)
    assert stored["status"] == want
    assert ack_launcher.observe(stored) == ack_launcher.observe({"status": want})
