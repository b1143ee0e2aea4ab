"""The real node (tests/peers/node.py): pods of our image, shaped as KFP 2.17 runs our components
(``pytest -m node tests/peers``; root, and the image built by container/build.sh)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.node


def test_a_pod_of_our_image_runs_as_its_non_root_user_and_its_exit_code_is_seen(node: Any, node_image: str) -> None:
    ns = node.create_namespace("smoke")
    pod = node.run_pod(ns, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "exit3"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": node_image, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "id -u; exit 3"]}]},
    }, timeout=120)
    assert pod.status.phase == "Failed"
    assert node.terminated(pod).exit_code == 3
    assert node.log(ns, "exit3").split() == ["1000"]
    assert pod.status.host_ip == node.ip
