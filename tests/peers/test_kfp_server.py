"""Our compiled pipelines against the real Kubeflow Pipelines API server (tests/peers/kfp_server.py): uploaded
with the real ``kfp`` CLI (the commands the README gives), run with ``kfp run create`` for each ``backend``, and
the Argo Workflow the server created read back from the kube-apiserver.

The expectations come from our own compiled YAML (its executors and its Kubernetes platform spec) and the task
settings module, so a change of either is checked against what the server makes of it, not against copies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dummy_training.kfp.components import DEFAULT_IMAGE
from dummy_training.kfp.components import task_settings as ts

pytestmark = pytest.mark.kfp_server

REPO = Path(__file__).resolve().parents[2]
PIPELINE_YAML = REPO / "pipelines" / "dummy_training_pipeline.yaml"
PARALLEL_YAML = REPO / "pipelines" / "dummy_training_parallel_pipeline.yaml"
PIPELINE_NAME = "dummy-training-pipeline"
PARALLEL_NAME = "dummy-training-parallel-pipeline"
BACKENDS = ("kubernetes", "sagemaker", "ack")
#: ``kfp run create`` parses each ``key=value`` as JSON first: a JSON object for our string parameter
#: ``hyperparameters_json`` must be given as a JSON *string* (quoted), else the server refuses the run.
HYPERPARAMETERS = {"epochs": 3}
HYPERPARAMETERS_ARG = json.dumps(json.dumps(HYPERPARAMETERS))


# ------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def kfp_server(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kfp_server import running

    with running(control_plane, tmp_path_factory.mktemp("kfp-server")) as server:
        yield server


def kfp_cli() -> str:
    """The ``kfp`` command of the interpreter running the tests (the venv's)."""
    found = Path(sys.executable).with_name("kfp")
    return str(found) if found.exists() else (shutil.which("kfp") or "kfp")


def kfp(server: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kfp --endpoint URL --output json ARGS`` as a user types it."""
    env = {**os.environ, "KUBECONFIG": os.devnull}
    out = subprocess.run([kfp_cli(), "--endpoint", server.url, "--output", "json", *args], capture_output=True,
                         text=True, env=env, timeout=120, cwd=REPO)
    if check and out.returncode != 0:
        raise AssertionError(f"kfp {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}\n"
                             f"-- kfp-apiserver log:\n{server.log_tail()}")
    return out


def json_out(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object ``kfp --output json`` printed (after any warnings on stdout)."""
    text = out.stdout
    return dict(json.loads(text[text.index("{"):]))


@pytest.fixture(scope="module")
def client(kfp_server: Any) -> Any:
    import kfp

    return kfp.Client(host=kfp_server.url)


@pytest.fixture(scope="module")
def uploaded(kfp_server: Any, client: Any) -> dict[str, str]:
    """Both pipelines uploaded with ``kfp pipeline create``: name -> pipeline id."""
    ids = {}
    for name, path in ((PIPELINE_NAME, PIPELINE_YAML), (PARALLEL_NAME, PARALLEL_YAML)):
        got = json_out(kfp(kfp_server, "pipeline", "create", "-p", name, str(path.relative_to(REPO))))
        ids[name] = got["pipeline_id"]
    return ids


def docs(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, Kubernetes platform spec) of a compiled pipeline YAML."""
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    return spec, platform["platforms"]["kubernetes"]


def wf_arguments(wf: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p.get("value", "") for p in wf["spec"]["arguments"]["parameters"]}


def wf_json_arguments(wf: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [json.loads(v) for k, v in wf_arguments(wf).items() if k.startswith(prefix)]


def dag_tasks(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [task for t in wf["spec"]["templates"] if t.get("dag") for task in t["dag"]["tasks"]]


def task_arg(task: dict[str, Any], name: str) -> str | None:
    for p in task.get("arguments", {}).get("parameters", []):
        if p["name"] == name:
            return str(p.get("value", ""))
    return None


def version_ids(server: Any, pipeline_id: str) -> dict[str, str]:
    """``kfp pipeline list-versions``: version name -> id."""
    text = kfp(server, "pipeline", "list-versions", pipeline_id).stdout
    return {v["display_name"]: v["pipeline_version_id"] for v in json.loads(text[text.index("["):])}


def create_run(server: Any, pipeline_id: str, name: str, **params: str) -> tuple[str, dict[str, Any]]:
    """``kfp run create`` of ``pipeline_id`` (its first version: kfp 2.17's CLI needs ``-v`` with ``-p``) with
    ``params``: (run id, its Workflow)."""
    version = next(iter(version_ids(server, pipeline_id).values()))
    out = kfp(server, "run", "create", "-e", "dummy-training-peers", "-r", name, "-p", pipeline_id, "-v", version,
              *(f"{k}={v}" for k, v in params.items()))
    run_id = json_out(out)["run_id"]
    return run_id, server.workflow_of_run(run_id)


# ------------------------------------------------------------------------------------------------- upload
def test_kfp_pipeline_create_uploads_both_pipelines(uploaded: dict[str, str], client: Any) -> None:
    for name, pipeline_id in uploaded.items():
        got = client.get_pipeline(pipeline_id)
        assert got.display_name == name
        versions = client.list_pipeline_versions(pipeline_id).pipeline_versions
        assert len(versions) == 1
        # the server stores both documents it was given (a pipeline spec with a platform spec comes back as
        # {"pipeline_spec": ..., "platform_spec": ...}), unchanged
        stored = versions[0].pipeline_spec
        ours, platform = docs(PIPELINE_YAML if name == PIPELINE_NAME else PARALLEL_YAML)
        assert stored["pipeline_spec"] == ours
        assert stored["platform_spec"]["platforms"]["kubernetes"] == platform


def test_second_version_uploads(kfp_server: Any, uploaded: dict[str, str], client: Any) -> None:
    pipeline_id = uploaded[PIPELINE_NAME]
    got = json_out(kfp(kfp_server, "pipeline", "create-version", "-n", PIPELINE_NAME, "-v", "v2",
                       str(PIPELINE_YAML.relative_to(REPO))))
    assert got["pipeline_id"] == pipeline_id
    versions = client.list_pipeline_versions(pipeline_id).pipeline_versions
    assert sorted(v.display_name for v in versions) == sorted([PIPELINE_NAME, "v2"])


def test_a_spec_the_server_refuses_gives_its_reason(kfp_server: Any, tmp_path: Path) -> None:
    spec, platform = docs(PIPELINE_YAML)
    spec["schemaVersion"] = "9.9.9"  # the server accepts only 2.1.0
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all([spec, {"platforms": {"kubernetes": platform}}]))
    out = kfp(kfp_server, "pipeline", "create", "-p", "broken-pipeline", str(broken), check=False)
    assert out.returncode != 0
    assert "KFP only supports schema version 2.1.0" in out.stdout + out.stderr


# ------------------------------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def runs(kfp_server: Any, uploaded: dict[str, str]) -> dict[str, dict[str, Any]]:
    """One ``kfp run create`` of the pipeline for each backend: backend -> its Workflow."""
    got = {}
    for backend in BACKENDS:
        _, wf = create_run(kfp_server, uploaded[PIPELINE_NAME], f"peers-{backend}",
                           model_uri="s3://bucket/model.tar.gz", hyperparameters_json=HYPERPARAMETERS_ARG,
                           backend=backend, role_arn="arn:aws:iam::123456789012:role/r",
                           image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0",
                           s3_prefix="s3://bucket/out")
        got[backend] = wf
    return got


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_carries_its_backend(runs: dict[str, dict[str, Any]], backend: str) -> None:
    wf = runs[backend]
    assert wf["metadata"]["namespace"] == "kubeflow"
    assert wf["spec"]["serviceAccountName"] == "pipeline-runner"
    # the run's parameters reach the root DAG driver as its runtime config
    root_runtime = [task_arg(t, "runtime-config") for t in dag_tasks(wf) if task_arg(t, "runtime-config")]
    assert root_runtime, "no driver task carries the run's runtime config"
    params = json.loads(root_runtime[0])["parameterValues"]
    assert params["backend"] == backend
    assert params["model_uri"] == "s3://bucket/model.tar.gz"
    assert json.loads(params["hyperparameters_json"]) == HYPERPARAMETERS


def test_every_backend_gets_the_same_workflow(runs: dict[str, dict[str, Any]]) -> None:
    """Unlike kfp.local, which runs only the chosen branch, the server compiles every branch into each run's
    Workflow; which one runs is decided by the driver at run time from the runtime config."""
    def shape(wf: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
        return sorted((t["name"], sorted((task["name"], task.get("when", "")) for task in t["dag"]["tasks"]))
                      for t in wf["spec"]["templates"] if t.get("dag"))

    shapes = {b: shape(wf) for b, wf in runs.items()}
    assert shapes["kubernetes"] == shapes["sagemaker"] == shapes["ack"]
    tasks = {name for _, ts_ in shapes["kubernetes"] for name, _ in ts_}
    for ours in ("dummy-training", "sagemaker-dummy-training", "ack-dummy-training", "unknown-backend-op"):
        assert ours in tasks


def test_a_json_object_for_a_string_parameter_gives_the_servers_reason(kfp_server: Any,
                                                                       uploaded: dict[str, str]) -> None:
    pipeline_id = uploaded[PIPELINE_NAME]
    version = next(iter(version_ids(kfp_server, pipeline_id).values()))
    out = kfp(kfp_server, "run", "create", "-e", "dummy-training-peers", "-r", "unquoted", "-p", pipeline_id,
              "-v", version, "model_uri=s3://bucket/model.tar.gz",
              f"hyperparameters_json={json.dumps(HYPERPARAMETERS)}",
              check=False)
    assert out.returncode != 0
    assert "input parameter hyperparameters_json requires type string" in out.stdout + out.stderr


def test_every_executor_reaches_the_workflow_as_compiled(runs: dict[str, dict[str, Any]]) -> None:
    spec, _ = docs(PIPELINE_YAML)
    wf = runs["kubernetes"]
    impls = wf_json_arguments(wf, "implementations-")
    containers = [i for i in impls if "image" in i]
    ours = [e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e]
    for container in ours:
        assert container in containers, f"executor with command {container['command'][:2]} not in the Workflow"
    image = DEFAULT_IMAGE  # the committed YAML is compiled without DUMMY_TRAINING_IMAGE
    for c in containers:
        assert c["image"] == image
        assert c["command"][:2] == ["sh", "-ec"]
        assert c["args"][:2] == ["--executor_input", "{{$}}"]


def _resources(container: dict[str, Any]) -> tuple[str, str, str, str]:
    r = container["resources"]
    return r["resourceCpuRequest"], r["resourceCpuLimit"], r["resourceMemoryRequest"], r["resourceMemoryLimit"]


def test_cpu_and_memory_requests_and_limits(runs: dict[str, dict[str, Any]]) -> None:
    containers = [i for i in wf_json_arguments(runs["kubernetes"], "implementations-") if "image" in i]
    repack, small = ts.REPACK_RESOURCES, ts.SMALL_RESOURCES
    expected = {(repack.cpu_request, repack.cpu_limit, repack.memory_request, repack.memory_limit),
                (small.cpu_request, small.cpu_limit, small.memory_request, small.memory_limit)}
    got = {_resources(c) for c in containers if "resources" in c}
    assert got == expected
    # only the unknown-backend task (it fails at once) has none, as compiled
    bare = [c for c in containers if "resources" not in c]
    assert [c["args"][3] for c in bare] == ["unknown_backend_op"]


def test_retries_with_backoff(runs: dict[str, dict[str, Any]]) -> None:
    wf = runs["kubernetes"]
    retry_templates = [t for t in wf["spec"]["templates"] if t.get("retryStrategy")]
    assert retry_templates, "no template with a retryStrategy"
    strategy = retry_templates[0]["retryStrategy"]
    assert "backoff" in strategy
    # the tasks of our DAGs pass their values; the executor template passes its own inputs on
    executor_tasks = [t for t in dag_tasks(wf)
                      if task_arg(t, "retry-max-count") and not str(task_arg(t, "retry-max-count")).startswith("{{")]
    assert executor_tasks
    for t in executor_tasks:
        assert task_arg(t, "retry-max-count") == str(ts.RETRIES)
        assert task_arg(t, "retry-backoff-duration") == "30"
        assert float(task_arg(t, "retry-backoff-factor") or 0) == ts.RETRY_BACKOFF_FACTOR
        assert task_arg(t, "retry-backoff-max-duration") == "600"


def test_secret_as_env_and_image_pull_policy(runs: dict[str, dict[str, Any]]) -> None:
    _, platform = docs(PIPELINE_YAML)
    wf = runs["kubernetes"]
    k8s = {k.removeprefix("kubernetes-"): json.loads(v) for k, v in wf_arguments(wf).items()
           if k.startswith("kubernetes-")}
    for executor, config in platform["deploymentSpec"]["executors"].items():
        assert config["imagePullPolicy"] == ts.IMAGE_PULL_POLICY
        stored = next((c for c in k8s.values() if c == config), None)
        assert stored is not None, f"the Kubernetes config of {executor} is not in the Workflow as compiled"
    with_secret = [c for c in k8s.values() if c.get("secretAsEnv")]
    assert with_secret
    for c in with_secret:
        (secret,) = c["secretAsEnv"]
        assert {m["envVar"] for m in secret["keyToEnv"]} == set(ts.AWS_SECRET_KEYS.values())
        assert secret["optional"] is True
        assert secret["secretNameParameter"] == {"componentInputParameter": "pipelinechannel--aws_secret_name"}


def test_branch_conditions_on_backend(runs: dict[str, dict[str, Any]]) -> None:
    wf = runs["kubernetes"]
    conditions = set()
    for t in dag_tasks(wf):
        task = task_arg(t, "task")
        if task and task.startswith("{"):
            cond = json.loads(task).get("triggerPolicy", {}).get("condition")
            if cond:
                conditions.add(cond)
    for backend in BACKENDS:
        assert any(f"== '{backend}'" in c and "pipelinechannel--backend" in c for c in conditions), conditions


def test_parallel_for_fans_out(kfp_server: Any, uploaded: dict[str, str]) -> None:
    spec, _ = docs(PARALLEL_YAML)
    _, wf = create_run(kfp_server, uploaded[PARALLEL_NAME], "peers-parallel",
                       model_uris='["s3://b/a.tar.gz", "s3://b/b.tar.gz", "s3://b/c.tar.gz"]',
                       hyperparameters_json=HYPERPARAMETERS_ARG)
    fan_out = [t for t in dag_tasks(wf) if t.get("withSequence") or t.get("withParam") or t.get("withItems")]
    assert fan_out, "no task of the Workflow iterates"
    assert any("iteration-count" in json.dumps(t) for t in fan_out)
