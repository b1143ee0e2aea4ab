"""One task of a compiled component as KFP 2.17 runs it: the executor input its driver writes and the command
line its launcher starts, built from our compiled YAML (no kfp import).

What KFP does (``backend/src/v2`` at 2.17.0; the peers tier's ``kfp-2.17.0`` source):

- the driver (``driver.go`` ``provisionOutputs``) gives each output artifact the URI
  ``<pipeline root>/<pipeline>/<run id>/<task>/<salt>/<output>`` (default root ``minio://mlpipeline/v2/artifacts``,
  ``salt`` a uuid drawn once per task), each output parameter the file ``/tmp/kfp/outputs/<name>``, and the
  executor output file ``output_metadata.json`` in the task root's local path; the inputs are the values given
  plus the defaults of the component's input definitions (an omitted optional input without a default is left
  out);
- ``{{$}}`` in the container's command/args is the executor input as JSON (``resolveContainerArgs`` and the
  launcher's placeholder resolution), every other argument is passed as compiled;
- a URI's local path is ``/minio/...``, ``/s3/...`` or ``/gcs/...`` (``component.LocalPathForURI``; the SDK's
  ``Artifact.path`` says the same), each an emptyDir of the executor pod (``argocompiler/container.go``).

The pod around it is tests/peers/kfp_pod.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
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
