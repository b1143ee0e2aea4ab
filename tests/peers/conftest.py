"""Session fixtures of the peers tier (``pytest -m peers tests/peers``; .ci/peers.sh builds the binaries first).

``control_plane``: one etcd + kube-apiserver (tests/peers/control_plane.py) for the whole session, stopped at
its end; its logs stay in the session's temporary directory (``control_plane.workdir``).

``node`` / ``node_image`` (``pytest -m node tests/peers``): a real node running pods of our image, with its own
control plane on the node's IP (tests/peers/node.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from control_plane import ControlPlane  # noqa: E402


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running control plane: ``.url``, ``.admin_token``, ``.kubeconfig`` (admin), ``.ca_file``,
    ``.api_client(token=None)``, ``.apply(docs)``, ``.service_account_token(ns, name)``, ``.can_i(...)``."""
    with ControlPlane(tmp_path_factory.mktemp("control-plane")) as cp:
        yield cp


@pytest.fixture
def kube_client(control_plane: ControlPlane) -> Callable[..., Any]:
    """``kube_client(token=None)``: a kubernetes ``ApiClient`` for the control plane (admin by default)."""
    return control_plane.api_client


# ---------------------------------------------------------------------------------------------------- ACK
@pytest.fixture(scope="session")
def ack_crd(control_plane: ControlPlane) -> str:
    """The ACK SageMaker controller's ProcessingJob CRD installed (tests/peers/ack_peer.py); its name."""
    from ack_peer import processing_job_crd

    crd = processing_job_crd()
    control_plane.apply(crd)
    return str(crd["metadata"]["name"])


@pytest.fixture(scope="session")
def pipeline_runner(control_plane: ControlPlane, ack_crd: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """KFP's ``kubeflow`` namespace with the ``pipeline-runner`` ServiceAccount and
    components/ack_dummy_training/rbac.yaml applied; ``.token`` (TokenRequest), ``.kubeconfig`` (that token,
    namespace kubeflow), ``.user`` (the token's username), ``.namespace``."""
    from types import SimpleNamespace

    from ack_peer import repo_root

    ns, sa = "kubeflow", "pipeline-runner"
    control_plane.create_namespace(ns)
    token = control_plane.service_account_token(ns, sa)
    control_plane.apply_files([repo_root() / "components" / "ack_dummy_training" / "rbac.yaml"])
    kubeconfig = control_plane.write_kubeconfig(tmp_path_factory.mktemp("runner") / "kubeconfig", token,
                                                user=sa, namespace=ns)
    return SimpleNamespace(token=token, kubeconfig=kubeconfig, namespace=ns,
                           user=f"system:serviceaccount:{ns}:{sa}")


# ---------------------------------------------------------------------------------------------------- the node
@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real single-node Kubernetes (tests/peers/node.py; its docstring lists the interface): ``.ip``,
    ``.kubeconfig``, ``.api_client()``, ``.core``, ``.create_namespace()``, ``.host_dir()``, ``.run_pod()``,
    ``.wait_pod()``, ``.wait_running()``, ``.terminated()``, ``.log()``, ``.import_image()``. Fails (never skips)
    when the machine lacks what it needs: the tier's script installs it."""
    from node import Node, missing_prerequisites

    missing = missing_prerequisites()
    if missing:
        pytest.fail("the node tier needs: " + "; ".join(missing) + " (run it through .ci/peers.sh, as root)")
    with Node(tmp_path_factory.mktemp("node")) as running:
        yield running


@pytest.fixture(scope="session")
def node_image(node: Any) -> str:
    """Our image (``DUMMY_TRAINING_TEST_IMAGE``, default ``dummy-training:<version>``, what container/build.sh
    tags) imported from podman into the node's containerd: the name pods use (``imagePullPolicy: Never`` or
    ``IfNotPresent``). Fails when podman does not have it: build it first (``.ci/container.sh``)."""
    import os
    import subprocess

    from dummy_training.kfp.components import DEFAULT_IMAGE

    image = os.environ.get("DUMMY_TRAINING_TEST_IMAGE") or DEFAULT_IMAGE
    if subprocess.run(["podman", "image", "exists", image], timeout=60).returncode != 0:
        pytest.fail(f"podman has no image {image}: build it with `bash container/build.sh` (.ci/run's container "
                    "tier does) before the node tier")
    return str(node.import_image(image))
