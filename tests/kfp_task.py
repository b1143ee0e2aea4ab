"""A KFP task of one of our components run as KFP 2.17's backend runs it, without KFP: the container's
``command`` and ``args`` from the committed component.yaml, with ``{{$}}`` replaced by an ExecutorInput (what
KFP's launcher does before it starts the command). Artifact URIs map to local paths the way kfp's executor maps
them (``minio://b/k`` -> ``/minio/b/k``, a plain path stays itself).

Used by tests/kfp/test_component_signals.py (a subprocess here) and tests/peers/test_node.py (a pod on the real
node, with KFP's pod shape: ``task_pod``)."""

from __future__ import annotations

import json
import tarfile
import zlib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = {"model": "system.Model", "output_model": "system.Model", "report": "system.Markdown",
           "metrics": "system.Metrics", "hyperparameters": "system.Artifact"}


def component_container(component: str) -> dict[str, Any]:
    """``deploymentSpec.executors.<the one>.container`` of ``components/<component>/component.yaml``."""
    doc = yaml.safe_load((REPO / "components" / component / "component.yaml").read_text())
    (executor,) = doc["deploymentSpec"]["executors"].values()
    return dict(executor["container"])


def _artifact(name: str, uri: str) -> dict[str, Any]:
    return {"artifacts": [{"name": name, "type": {"schemaTitle": SCHEMAS.get(name, "system.Artifact"),
                                                  "schemaVersion": "0.0.1"}, "uri": uri, "metadata": {}}]}


def executor_input(*, inputs: dict[str, str], outputs: dict[str, str], parameters: dict[str, Any],
                   output_file: str) -> dict[str, Any]:
    """An ExecutorInput: input and output artifacts by name -> URI, parameter values, the output metadata file."""
    return {
        "inputs": {"artifacts": {k: _artifact(k, v) for k, v in inputs.items()}, "parameterValues": parameters},
        "outputs": {"artifacts": {k: _artifact(k, v) for k, v in outputs.items()}, "outputFile": output_file},
    }


def task_argv(component: str, executor: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(command, args) of the task, ``{{$}}`` filled with ``executor`` as KFP's launcher fills it."""
    container = component_container(component)
    args = [json.dumps(executor) if a == "{{$}}" else a for a in container["args"]]
    return list(container["command"]), args


def task_pod(name: str, component: str, executor: dict[str, Any], image: str, *,
             resources: dict[str, dict[str, str]] | None = None, volumes: dict[str, dict[str, Any]] | None = None,
             env: dict[str, str] | None = None, grace_seconds: int = 30) -> dict[str, Any]:
    """A pod shaped as the one KFP 2.17's Argo executor template runs (tests/peers/test_kfp_server.py reads it
    from the real API server's Workflow): the image's own (non-root) user, no securityContext, ``sh -ec``
    command and ``--executor_input`` args, the resources the pipeline sets (default the repack's, from
    task_settings), imagePullPolicy IfNotPresent, and the scratch emptyDirs KFP mounts (``/gcs``, ``/s3``,
    ``/minio``, ``/.local``, ``/.cache``, ``/.config``, ``/kfp-launcher``). ``volumes`` maps a mount path to a
    volume source (e.g. ``{"/minio": {"hostPath": {"path": ..., "type": "Directory"}}}``) replacing the
    emptyDir there or adding one."""
    from dummy_training.kfp.components import task_settings as ts

    command, args = task_argv(component, executor)
    r = ts.REPACK_RESOURCES
    if resources is None:
        resources = {"requests": {"cpu": r.cpu_request, "memory": r.memory_request},
                     "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit}}
    mounts: dict[str, dict[str, Any]] = {p: {"emptyDir": {}} for p in
                                         ("/gcs", "/s3", "/minio", "/.local", "/.cache", "/.config", "/kfp-launcher")}
    mounts.update(volumes or {})
    vols, vmounts = [], []
    for i, (path, source) in enumerate(sorted(mounts.items())):
        vname = f"v{i}-" + (path.strip("/").replace("/", "-").replace(".", "dot-") or "root")
        vols.append({"name": vname, **source})
        vmounts.append({"name": vname, "mountPath": path})
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "dummy-training-test"}},
        "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": grace_seconds,
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": ts.IMAGE_PULL_POLICY,
                "command": command, "args": args, "resources": resources, "volumeMounts": vmounts,
                "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            }],
            "volumes": vols,
        },
    }


def zeros_model(path: Path, size: int, name: str = "weights.bin") -> Path:
    """A model.tar.gz holding one member of ``size`` zero bytes (zlib level 1: about 0.4 GB/s to make): a gzip
    bomb (2 GiB in 9 MB) without a hyperparameters.json."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 1_700_000_000, 0o644
    co = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(co.compress(info.tobuf(format=tarfile.PAX_FORMAT)))
        left = size
        while left:
            n = min(left, len(chunk))
            out.write(co.compress(chunk[:n]))
            left -= n
        out.write(co.compress(bytes((-size) % 512 + 1024)))
        out.write(co.flush())
    return path
