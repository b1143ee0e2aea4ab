"""The control plane itself: the versions built from tests/peers/go/ are the ones running, and the apiserver
authenticates and authorizes for real (RBAC, static and service-account tokens)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error

import pytest
from control_plane import GO_DIR, ControlPlane, version_of

pytestmark = pytest.mark.peers


def pinned(folder: str, module: str) -> str:
    return subprocess.run(["go", "list", "-m", "-f", "{{.Version}}", module], cwd=GO_DIR / folder, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_pinned_kube_apiserver_serves(control_plane: ControlPlane) -> None:
    want = pinned("kube", "k8s.io/kubernetes")
    assert version_of("kube-apiserver") == f"Kubernetes {want}"
    served = json.loads(control_plane.get_raw("/version"))
    assert served["gitVersion"] == want
    assert (served["major"], served["minor"]) == ("1", want.split(".")[1])


def test_etcd_is_new_enough_for_watch_progress(control_plane: ControlPlane) -> None:
    want = pinned("etcd", "go.etcd.io/etcd/server/v3")
    line = version_of("etcd")
    assert line == f"etcd Version: {want.lstrip('v')}"
    major, minor, patch = (int(x) for x in re.findall(r"\d+", want)[:3])
    assert (major, minor, patch) >= (3, 5, 13)


def test_rbac_denies_an_unbound_service_account_and_allows_the_admin(control_plane: ControlPlane) -> None:
    token = control_plane.service_account_token("default", "nobody")
    with pytest.raises(urllib.error.HTTPError) as denied:
        control_plane.get_raw("/api/v1/namespaces/default/configmaps", token=token)
    assert denied.value.code == 403
    body = json.loads(denied.value.read())
    assert body["reason"] == "Forbidden"
    assert 'User "system:serviceaccount:default:nobody" cannot list resource "configmaps"' in body["message"]
    assert json.loads(control_plane.get_raw("/api/v1/namespaces/default/configmaps"))["kind"] == "ConfigMapList"


def test_anonymous_and_unknown_tokens_are_unauthorized(control_plane: ControlPlane) -> None:
    with pytest.raises(urllib.error.HTTPError) as unknown:
        control_plane.get_raw("/api/v1/namespaces", token="not-a-token")
    assert unknown.value.code == 401


def test_the_admin_kubeconfig_works_with_the_kubernetes_client(control_plane: ControlPlane) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(control_plane.kubeconfig)))
    names = {ns.metadata.name for ns in api.list_namespace().items}
    assert {"default", "kube-system"} <= names
