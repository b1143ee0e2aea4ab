"""A KFP task of one of our components run as KFP 2.17's backend runs it, without KFP: the container's
``command`` and ``args`` from the committed component.yaml, with ``{{$}}`` replaced by an ExecutorInput (what
KFP's launcher does before it starts the command). Artifact URIs map to local paths the way kfp's executor maps
them (``minio://b/k`` -> ``/minio/b/k``, a plain path stays itself).

Used by tests/kfp/test_component_signals.py (a subprocess here) and tests/peers/test_node.py (a pod on the real
node, with KFP's pod shape: ``task_pod``).

``kfp_task`` builds the whole task as the 2.17 driver provisions it, from the compiled pipeline's executor of the
component (resources, ``secretAsEnv``), for tests/peers/kfp_pod.py (the executor pod with the compiler's security
contexts and env) and tests/peers/test_node_launchers.py:

- the driver (``driver.go`` ``provisionOutputs``) gives each output artifact the URI
  ``<pipeline root>/<pipeline>/<run id>/<task>/<salt>/<output>`` (default root ``minio://mlpipeline/v2/artifacts``,
  ``salt`` a uuid drawn once per task), each output parameter the file ``/tmp/kfp/outputs/<name>``, and the
  executor output file ``output_metadata.json`` in the task root's local path; the inputs are the values given
  plus the defaults of the component's input definitions (an omitted optional input without a default is left
  out);
- ``{{$}}`` in the container's command/args is the executor input as JSON (``resolveContainerArgs`` and the
  launcher's placeholder resolution), every other argument is passed as compiled;
- a URI's local path is ``/minio/...``, ``/s3/...`` or ``/gcs/...`` (``component.LocalPathForURI``; the SDK's
  ``Artifact.path`` says the same), each an emptyDir of the executor pod (``argocompiler/container.go``)."""

from __future__ import annotations

import json
import tarfile
import uuid
import zlib
from dataclasses import dataclass, field
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


# ------------------------------------------------------------------ the task as the driver provisions it
PIPELINE_YAML = REPO / "pipelines" / "dummy_training_pipeline.yaml"
PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
#: the executor pod's scratch volumes (argocompiler/container.go): volume name -> mount path
SCRATCH_VOLUMES = {"kfp-launcher": "/kfp-launcher", "gcs-scratch": "/gcs", "s3-scratch": "/s3",
                   "minio-scratch": "/minio", "dot-local-scratch": "/.local", "dot-cache-scratch": "/.cache",
                   "dot-config-scratch": "/.config"}
_SCHEMES = {"minio://": "/minio/", "s3://": "/s3/", "gs://": "/gcs/"}


def component_yaml(function: str) -> Path:
    """``components/<function>/component.yaml``."""
    return REPO / "components" / function / "component.yaml"


def local_path(uri: str) -> str:
    """Where an artifact URI is in the executor's container."""
    for scheme, prefix in _SCHEMES.items():
        if uri.startswith(scheme):
            return prefix + uri[len(scheme):]
    raise ValueError(f"no local path for {uri!r}")


def _protojson(value: Any) -> Any:
    """A parameter value as the driver's protojson writes a ``structpb.Value``: an integral number without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class KfpTask:
    """A task of one of our components, ready for a pod: ``argv`` (command + args, resolved), the executor input,
    and the executor's Kubernetes settings from the compiled pipeline."""

    function: str
    image: str
    argv: list[str]
    executor_input: dict[str, Any]
    task_root: str
    #: the executor's ``resources`` as compiled (``resourceCpuLimit`` ...), empty when none
    resources: dict[str, str] = field(default_factory=dict)
    #: the platform spec's ``secretAsEnv`` of the executor (KFP's kubernetes_platform)
    secret_as_env: list[dict[str, Any]] = field(default_factory=list)
    image_pull_policy: str = ""

    def artifact_uri(self, name: str) -> str:
        return str(self.executor_input["outputs"]["artifacts"][name]["artifacts"][0]["uri"])

    def artifact_path(self, name: str) -> str:
        return local_path(self.artifact_uri(name))

    def parameter_file(self, name: str) -> str:
        return str(self.executor_input["outputs"]["parameters"][name]["outputFile"])

    @property
    def output_file(self) -> str:
        return str(self.executor_input["outputs"]["outputFile"])


def _executor(function: str, pipeline_yaml: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the container of the pipeline's executor running ``function``, its Kubernetes platform config)."""
    spec, platform = list(yaml.safe_load_all(pipeline_yaml.read_text()))
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor.get("container")
        if container and container["args"][2:4] == ["--function_to_execute", function]:
            return container, k8s.get(name, {})
    raise KeyError(f"no executor of {function} in {pipeline_yaml}")


def kfp_task(function: str, arguments: dict[str, Any], *, pipeline: str = "dummy-training-pipeline",
             run_id: str | None = None, task: str | None = None, salt: str | None = None,
             pipeline_root: str = PIPELINE_ROOT, pipeline_yaml: Path = PIPELINE_YAML) -> KfpTask:
    """The task of component ``function`` (components/<function>/component.yaml) with ``arguments``, as the
    2.17 driver and launcher would run it in run ``run_id`` of ``pipeline``; resources and secretAsEnv from the
    executor of ``pipeline_yaml`` that runs the same function (the component YAML has none)."""
    doc = yaml.safe_load(component_yaml(function).read_text())
    (comp,) = doc["components"].values()
    (executor,) = doc["deploymentSpec"]["executors"].values()
    container = executor["container"]
    compiled, platform = _executor(function, pipeline_yaml)
    if [compiled["command"], compiled["args"]] != [container["command"], container["args"]]:
        raise AssertionError(f"{function}: the pipeline's executor and the component YAML disagree")

    params = comp["inputDefinitions"].get("parameters", {})
    unknown = set(arguments) - set(params)
    if unknown:
        raise KeyError(f"{function} has no inputs {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, definition in params.items():
        if name in arguments:
            values[name] = _protojson(arguments[name])
        elif "defaultValue" in definition:
            values[name] = _protojson(definition["defaultValue"])
        elif not definition.get("isOptional"):
            raise KeyError(f"{function}: input {name} is required")

    task = task or next(iter(doc["root"]["dag"]["tasks"]))
    task_root = f"{pipeline_root}/{pipeline}/{run_id or uuid.uuid4()}/{task}/{salt or uuid.uuid4()}"
    outputs = comp.get("outputDefinitions", {})
    executor_input = {
        "inputs": {"parameterValues": values},
        "outputs": {
            "artifacts": {name: {"artifacts": [{"name": name, "type": spec_["artifactType"],
                                                "uri": f"{task_root}/{name}", "metadata": {}}]}
                          for name, spec_ in outputs.get("artifacts", {}).items()},
            "parameters": {name: {"outputFile": f"/tmp/kfp/outputs/{name}"}
                           for name in outputs.get("parameters", {})},
            "outputFile": f"{local_path(task_root)}/output_metadata.json",
        },
    }
    text = json.dumps(executor_input)
    argv = [text if a == "{{$}}" else a for a in [*container["command"], *container["args"]]]
    left = [a for a in argv if "{{$" in a]
    if left:
        raise AssertionError(f"{function}: placeholders kfp_task does not resolve: {left}")
    resources = {k: str(v) for k, v in (compiled.get("resources") or {}).items() if k.startswith("resource")}
    return KfpTask(function=function, image=container["image"], argv=argv, executor_input=executor_input,
                   task_root=task_root, resources=resources, secret_as_env=list(platform.get("secretAsEnv", [])),
                   image_pull_policy=str(platform.get("imagePullPolicy", "")))
