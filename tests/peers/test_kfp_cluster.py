"""Our pipelines run by KFP 2.17.0's own backend on the real node (tests/peers/kfp_cluster.py): uploaded and run with
the ``kfp`` CLI, as a user does, and read back through KFP's API (run and task states), the pods (exit codes, logs),
ML Metadata (the artifacts KFP recorded) and the object store (the bytes).

By hand (marker ``kfp_cluster``, deselected in CI): ``pytest -m kfp_cluster tests/peers/test_kfp_cluster.py``; it
needs root, the node's prerequisites, our image in podman, and the binaries tests/peers/README.md lists.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node import TEST_TIMEOUT

from dummy_training.kfp.example_model import write_example_model

RUN_TIMEOUT = 600
#: The first test's setup brings the node up (waiting up to node.LOCK_WAIT for another session's) and then KFP's
#: stack (about 3 min in all); a run takes up to RUN_TIMEOUT, and a failing one is retried twice (30 s, 60 s) first.
pytestmark = [pytest.mark.kfp_cluster, pytest.mark.timeout(TEST_TIMEOUT + 2 * RUN_TIMEOUT)]

REPO = Path(__file__).resolve().parents[2]
PIPELINE_YAML = REPO / "pipelines" / "dummy_training_pipeline.yaml"
PARALLEL_YAML = REPO / "pipelines" / "dummy_training_parallel_pipeline.yaml"
PIPELINE_NAME = "dummy-training-pipeline"
PARALLEL_NAME = "dummy-training-parallel-pipeline"
HYPERPARAMETERS = {"epochs": 3, "lr": 0.001}
#: ``kfp run create`` parses each ``key=value`` as JSON first: our string parameter needs a JSON string.
HYPERPARAMETERS_ARG = json.dumps(json.dumps(HYPERPARAMETERS))
BUCKET = "mlpipeline"
OTHER_BUCKET = "models"
NO_HYPERPARAMETERS = "the archive has no root hyperparameters.json and no hyperparameters were given"


# ------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def kfp_cluster(node: Any, node_image: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kfp_cluster import KfpCluster

    cluster = KfpCluster(node.control_plane, tmp_path_factory.mktemp("kfp-cluster"), node_ip=node.ip,
                         import_image=node.import_image)
    t0 = time.monotonic()
    cluster.start()
    print(f"\nkfp_cluster up in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    try:
        yield cluster
    finally:
        cluster.stop()


def kfp_cli() -> str:
    found = Path(sys.executable).with_name("kfp")
    return str(found) if found.exists() else (shutil.which("kfp") or "kfp")


def kfp(cluster: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kfp --endpoint URL --output json ARGS`` as a user types it."""
    env = {**os.environ, "KUBECONFIG": os.devnull}
    out = subprocess.run([kfp_cli(), "--endpoint", cluster.url, "--output", "json", *args], capture_output=True,
                         text=True, env=env, timeout=RUN_TIMEOUT + 60, cwd=REPO)
    if check and out.returncode != 0:
        raise AssertionError(f"kfp {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}\n"
                             f"{cluster.logs()}")
    return out


def json_out(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    text = out.stdout
    return dict(json.loads(text[text.index("{"):]))


@pytest.fixture(scope="module")
def client(kfp_cluster: Any) -> Any:
    import kfp

    return kfp.Client(host=kfp_cluster.url)


@pytest.fixture(scope="module")
def s3(kfp_cluster: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=kfp_cluster.s3_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(response_checksum_validation="when_required"))


@pytest.fixture(scope="module")
def uploaded(kfp_cluster: Any) -> dict[str, tuple[str, str]]:
    """Both pipelines uploaded with ``kfp pipeline create``: name -> (pipeline id, version id)."""
    ids = {}
    for name, path in ((PIPELINE_NAME, PIPELINE_YAML), (PARALLEL_NAME, PARALLEL_YAML)):
        got = json_out(kfp(kfp_cluster, "pipeline", "create", "-p", name, str(path.relative_to(REPO))))
        text = kfp(kfp_cluster, "pipeline", "list-versions", got["pipeline_id"]).stdout
        versions = json.loads(text[text.index("["):])
        ids[name] = (got["pipeline_id"], versions[0]["pipeline_version_id"])
    return ids


@pytest.fixture(scope="module")
def inputs(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Example models in the object store: ``minio://`` URI -> bytes (without and with hyperparameters.json; one
    in another bucket)."""
    tmp = tmp_path_factory.mktemp("inputs")
    s3.create_bucket(Bucket=OTHER_BUCKET)
    got = {}
    for bucket, key, with_hp in ((BUCKET, "inputs/model.tar.gz", False), (BUCKET, "inputs/own-hp.tar.gz", True),
                                 (OTHER_BUCKET, "other/model.tar.gz", False)):
        path = write_example_model(tmp / Path(key).name, with_hyperparameters=with_hp)
        s3.upload_file(str(path), bucket, key)
        got[f"minio://{bucket}/{key}"] = path.read_bytes()
    return got


def run(cluster: Any, client: Any, uploaded: dict[str, tuple[str, str]], name: str, pipeline: str = PIPELINE_NAME,
        **params: str) -> Any:
    """``kfp run create`` (the uploaded version) and wait for the run to end: the run as KFP's API returns it."""
    pipeline_id, version_id = uploaded[pipeline]
    out = kfp(cluster, "run", "create", "-e", "dummy-training-cluster", "-r", name, "-p", pipeline_id, "-v",
              version_id, *(f"{k}={v}" for k, v in params.items()))
    run_id = json_out(out)["run_id"]
    return client.wait_for_run_completion(run_id, timeout=RUN_TIMEOUT)


def tasks(got: Any, name: str) -> list[Any]:
    """The run's tasks (KFP's API: Argo's nodes, named by task name, not display name) for our task ``name``,
    e.g. ``dummy-training`` (``dummy-training-2`` in a branch); not their drivers."""
    pattern = re.compile(rf"{re.escape(name)}(-\d+)?")  # not the Workflow's root node, "dummy-training-pipeline-xyz"
    return [t for t in got.run_details.task_details or [] if t.display_name and pattern.fullmatch(t.display_name)]


def task_states(got: Any, name: str) -> list[str]:
    return sorted(str(t.state) for t in tasks(got, name))


def settled_task_states(client: Any, got: Any, name: str, timeout: float = 90) -> tuple[list[str], list[list[str]]]:
    """``task_states`` once none is RUNNING, re-reading the run (KFP's API can say a run FAILED while its retried
    task still says RUNNING); (the last states, every distinct reading) for a failing test's message."""
    seen = [task_states(got, name)]
    deadline = time.monotonic() + timeout
    while "RUNNING" in seen[-1] and time.monotonic() < deadline:
        time.sleep(3)
        now = task_states(client.get_run(got.run_id), name)
        if now != seen[-1]:
            seen.append(now)
    return seen[-1], seen


def executions_of(store: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The run's executions in ML Metadata (KFP files each under its run's context)."""
    return [e for e in store["executions"] if run_id in e["runs"]]


def outputs_of(store: dict[str, Any], execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Output name -> artifact of an execution (the OUTPUT events)."""
    arts = {a["id"]: a for a in store["artifacts"]}
    return {ev["path"][0] if ev["path"] else str(ev["artifact_id"]): arts[ev["artifact_id"]]
            for ev in store["events"] if ev["execution_id"] == execution["id"] and ev["type"] == "OUTPUT"}


def repack_execution(cluster: Any, run_id: str) -> dict[str, Any]:
    """The run's repack execution (display name ``repack``) in ML Metadata."""
    (got,) = [e for e in executions_of(cluster.store(), run_id) if e["custom_properties"].get("display_name")
              == "repack"]
    return got


def repack_outputs(cluster: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """The outputs of the run's repack task (display name ``repack``) as ML Metadata recorded them."""
    store = cluster.store()
    for e in executions_of(store, run_id):
        if e["custom_properties"].get("display_name") == "repack":
            return outputs_of(store, e)
    raise AssertionError(f"no repack execution for run {run_id}: "
                         f"{json.dumps(executions_of(store, run_id), indent=1)[:3000]}")


def read_uri(s3: Any, uri: str) -> bytes:
    scheme, rest = uri.split("://", 1)
    assert scheme in ("minio", "s3"), uri
    bucket, key = rest.split("/", 1)
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def pods_of(cluster: Any, run: Any) -> list[dict[str, Any]]:
    return [p for p in cluster.pods() if p["metadata"].get("labels", {}).get("pipeline/runid") == run.run_id]


def state(got: Any) -> str:
    return str(got.state)


# ------------------------------------------------------------------------------------------------- cases
@pytest.fixture(scope="module")
def inject_run(kfp_cluster: Any, client: Any, uploaded: Any, inputs: Any) -> Any:
    """backend=kubernetes, the model without hyperparameters.json, hyperparameters inline; no ``aws-credentials``
    Secret exists (the optional Secret absent)."""
    return run(kfp_cluster, client, uploaded, "inject", model_uri="minio://mlpipeline/inputs/model.tar.gz",
               hyperparameters_json=HYPERPARAMETERS_ARG, backend="kubernetes")


def test_inject_run_succeeds_without_the_aws_secret(kfp_cluster: Any, inject_run: Any) -> None:
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kfp_cluster.control_plane.api_client())
    assert "aws-credentials" not in [s.metadata.name for s in core.list_namespaced_secret("kubeflow").items]
    assert state(inject_run) == "SUCCEEDED", f"{inject_run}\n{kfp_cluster.logs()}"
    # KFP's API names the tasks by task name (dummy-training-2 in its branch); ML Metadata keeps the display names
    for name in ("dummy-training", "check-model-op"):
        assert task_states(inject_run, name) == ["SUCCEEDED"]
    shown = {e["custom_properties"].get("display_name") for e in executions_of(kfp_cluster.store(), inject_run.run_id)}
    assert {"repack", "check", "backend-kubernetes", "via-artifacts", "without-hyperparameters-file"} <= shown


def test_output_model_in_the_store_is_the_repacked_archive(kfp_cluster: Any, inject_run: Any, s3: Any,
                                                            inputs: dict[str, bytes]) -> None:
    outs = repack_outputs(kfp_cluster, inject_run.run_id)
    model = outs["output_model"]
    assert model["type"] == "system.Model"
    data = read_uri(s3, model["uri"])
    props = model["custom_properties"]
    assert hashlib.sha256(data).hexdigest() == props["sha256"]
    assert props.get("decision") == "injected", props
    got = members(data)
    assert json.loads(got["hyperparameters.json"]) == HYPERPARAMETERS
    original = members(inputs["minio://mlpipeline/inputs/model.tar.gz"])
    assert {k: v for k, v in got.items() if k != "hyperparameters.json"} == original


def test_report_and_metrics_where_the_ui_reads_them(kfp_cluster: Any, inject_run: Any, s3: Any) -> None:
    outs = repack_outputs(kfp_cluster, inject_run.run_id)
    report, metrics = outs["report"], outs["metrics"]
    assert report["type"] == "system.Markdown"
    text = read_uri(s3, report["uri"]).decode()
    assert "injected" in text
    assert metrics["type"] == "system.Metrics"
    # the UI reads a Metrics artifact's values from its custom properties in ML Metadata
    assert any(isinstance(v, (int, float)) for v in metrics["custom_properties"].values()), metrics


def test_preserve_keeps_the_bytes(kfp_cluster: Any, client: Any, uploaded: Any, inputs: Any, s3: Any) -> None:
    uri = "minio://mlpipeline/inputs/own-hp.tar.gz"
    got = run(kfp_cluster, client, uploaded, "preserve", model_uri=uri, hyperparameters_json=HYPERPARAMETERS_ARG)
    assert state(got) == "SUCCEEDED", kfp_cluster.logs()
    model = repack_outputs(kfp_cluster, got.run_id)["output_model"]
    assert model["custom_properties"].get("decision") == "preserved"
    assert read_uri(s3, model["uri"]) == inputs[uri]


@pytest.fixture(scope="module")
def store_secret(kfp_cluster: Any) -> str:
    """A Secret with the store's keys, region and S3 endpoint: what a task needs to read a model outside the
    pipeline root's bucket (KFP's importer marks every imported artifact "fromEnv": the launcher reads it with the
    pod's environment, not with KFP's store credentials). The endpoint is an IP: with a host name the Go SDK goes
    virtual-hosted ("models.seaweedfs.kubeflow:9000", which nothing resolves)."""
    kfp_cluster.control_plane.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "aws-store", "namespace": "kubeflow"}, "stringData": {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": kfp_cluster.s3_url}})
    return "aws-store"


def test_model_in_another_bucket(kfp_cluster: Any, client: Any, uploaded: Any, inputs: Any, s3: Any,
                                 store_secret: str) -> None:
    got = run(kfp_cluster, client, uploaded, "other-bucket", model_uri="minio://models/other/model.tar.gz",
              hyperparameters_json=HYPERPARAMETERS_ARG, aws_secret_name=store_secret)
    assert state(got) == "SUCCEEDED", kfp_cluster.logs()
    model = repack_outputs(kfp_cluster, got.run_id)["output_model"]
    assert json.loads(members(read_uri(s3, model["uri"]))["hyperparameters.json"]) == HYPERPARAMETERS


def test_no_hyperparameters_fails_with_exit_1_and_one_line(kfp_cluster: Any, client: Any, uploaded: Any,
                                                           inputs: Any) -> None:
    got = run(kfp_cluster, client, uploaded, "no-hp", model_uri="minio://mlpipeline/inputs/model.tar.gz")
    assert state(got) == "FAILED"
    states, seen = settled_task_states(client, got, "dummy-training")
    assert "FAILED" in states, seen
    # what a user finds: `kfp run get` names the run failed; the failing pod's log has the one line, its exit code 1
    shown = kfp(kfp_cluster, "run", "get", got.run_id).stdout
    assert "FAILED" in shown
    failed = [p for p in pods_of(kfp_cluster, got)
              if any((c.get("state", {}).get("terminated") or {}).get("exitCode") == 1
                     for c in p["status"].get("containerStatuses", []) if c["name"] == "main")]
    assert failed, [p["metadata"]["name"] for p in pods_of(kfp_cluster, got)]
    log = kfp_cluster.pod_log(failed[0]["metadata"]["name"])
    lines = [line for line in log.splitlines() if NO_HYPERPARAMETERS in line]
    assert lines, log[-3000:]
    assert "Traceback" not in log


def test_parallel_for_over_three_models(kfp_cluster: Any, client: Any, uploaded: Any, inputs: Any,
                                        s3: Any, store_secret: str) -> None:
    uris = ["minio://mlpipeline/inputs/model.tar.gz", "minio://mlpipeline/inputs/own-hp.tar.gz",
            "minio://models/other/model.tar.gz"]
    got = run(kfp_cluster, client, uploaded, "parallel", pipeline=PARALLEL_NAME, model_uris=json.dumps(uris),
              hyperparameters_json=HYPERPARAMETERS_ARG, aws_secret_name=store_secret)
    assert state(got) == "SUCCEEDED", kfp_cluster.logs()
    store = kfp_cluster.store()
    models = [outputs_of(store, e)["output_model"] for e in executions_of(store, got.run_id)
              if "output_model" in outputs_of(store, e)]
    assert len(models) == 3
    decisions = sorted(m["custom_properties"].get("decision") for m in models)
    assert decisions == ["injected", "injected", "preserved"]
    for m in models:
        assert hashlib.sha256(read_uri(s3, m["uri"])).hexdigest() == m["custom_properties"]["sha256"]


def test_caching_reuses_and_a_pipeline_compiled_without_it_does_not(kfp_cluster: Any, client: Any, uploaded: Any,
                                                                     no_cache: tuple[str, str],
                                                                     inject_run: Any) -> None:
    """A second identical run reuses the first's outputs (CACHED); the same run of the pipeline compiled with
    KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT=true runs again. (The SDK's enable_caching=False at run time does not
    reach our tasks, all inside dsl.If: kfp 2.17 overrides only the root DAG's tasks; tests/kfp/test_caching_off.py.)"""
    assert state(inject_run) == "SUCCEEDED"
    params = {"model_uri": "minio://mlpipeline/inputs/model.tar.gz", "hyperparameters_json": HYPERPARAMETERS_ARG,
              "backend": "kubernetes"}
    again = run(kfp_cluster, client, uploaded, "cached", **params)
    assert state(again) == "SUCCEEDED"
    # KFP's API shows a cached task as SUCCEEDED; ML Metadata says CACHED (and which execution it reused)
    assert task_states(again, "dummy-training") == ["SUCCEEDED"]
    first = repack_execution(kfp_cluster, inject_run.run_id)
    reused = repack_execution(kfp_cluster, again.run_id)
    assert reused["state"] == "CACHED"
    assert str(reused["custom_properties"].get("cached_execution_id")) == str(first["id"])
    fresh = run(kfp_cluster, client, {"no-cache": no_cache}, "not-cached", pipeline="no-cache", **params)
    assert state(fresh) == "SUCCEEDED"
    assert repack_execution(kfp_cluster, fresh.run_id)["state"] == "COMPLETE"


# ------------------------------------------------------------------------------------------------ SageMaker
@pytest.fixture(scope="module")
def no_cache(kfp_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The pipeline compiled with caching off (docs/deploy.md), uploaded: (pipeline id, version id)."""
    out = tmp_path_factory.mktemp("no-cache")
    subprocess.run([sys.executable, "-m", "dummy_training", "compile", "--output-dir", str(out)], check=True,
                   capture_output=True, env={**os.environ, "KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT": "true"})
    path = out / "pipelines" / PIPELINE_YAML.name
    got = json_out(kfp(kfp_cluster, "pipeline", "create", "-p", "dummy-training-no-cache", str(path)))
    text = kfp(kfp_cluster, "pipeline", "list-versions", got["pipeline_id"]).stdout
    return got["pipeline_id"], json.loads(text[text.index("["):])[0]["pipeline_version_id"]


class FlakySageMaker:
    """Builds a FakeSageMaker (tests/fake_sagemaker.py) whose first ``fail`` Describes of an existing job answer
    AccessDeniedException: the launcher pod fails after creating its job, as after a transient fault."""

    @staticmethod
    def make(fail: int, **kw: Any) -> Any:
        from fake_sagemaker import FakeSageMaker

        class Flaky(FakeSageMaker):
            def handle(self, op: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
                nonlocal fail
                with self.lock:
                    known = params.get("ProcessingJobName", "") in self.jobs
                    if op == "DescribeProcessingJob" and known and fail > 0:
                        fail -= 1
                        self.calls.append((op, params))
                        return 400, {"__type": "AccessDeniedException", "message": "not authorized (transient)"}
                return super().handle(op, params)  # type: ignore[no-any-return]

        return Flaky(**kw)


@pytest.fixture
def sagemaker(kfp_cluster: Any, tmp_path: Path) -> Iterator[Any]:
    """``sagemaker(name, fail=0, gate=None)``: a fake SageMaker on the node's IP playing each job with our engine
    against the store, and a Secret ``name`` pointing the pods at it (AWS keys, region, the S3, SageMaker and
    CloudWatch Logs endpoints): the fake."""
    from fake_sagemaker import PlaySageMaker

    started = []

    def make(name: str, fail: int = 0, gate: Any = None) -> Any:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        fake = FlakySageMaker.make(fail, host=kfp_cluster.node_ip, background=True, gate=gate,
                                   on_create=PlaySageMaker(kfp_cluster.s3_url, tmp_path / name))
        url = fake.start()
        started.append(fake)
        kfp_cluster.control_plane.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": name, "namespace": "kubeflow"}, "stringData": {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": kfp_cluster.s3_url, "AWS_ENDPOINT_URL_SAGEMAKER": url,
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": kfp_cluster.s3_url}})
        return fake

    yield make
    for fake in started:
        fake.stop()


def sagemaker_params(secret: str) -> dict[str, str]:
    return {"model_uri": "s3://mlpipeline/inputs/model.tar.gz", "hyperparameters_json": HYPERPARAMETERS_ARG,
            "backend": "sagemaker", "aws_secret_name": secret, "role_arn": "arn:aws:iam::123456789012:role/r",
            "image_uri": "dummy-training:0.1.0-root", "s3_prefix": "s3://mlpipeline/sagemaker", "region": "us-east-1"}


def launcher_pods(cluster: Any, run_id: str) -> dict[str, str]:
    """The SageMaker or ACK launcher's pods of a run (those whose log has the launchers' job lines): name -> log."""
    got = {}
    for p in cluster.pods():
        name = p["metadata"]["name"]
        if p["metadata"].get("labels", {}).get("pipeline/runid") == run_id and "container-impl" in name:
            log = cluster.pod_log(name)
            if "INFO processing job " in log:
                got[name] = log
    return got


def phase(cluster: Any, pod: str) -> str:
    return next(str(p["status"]["phase"]) for p in cluster.pods() if p["metadata"]["name"] == pod)


def test_sagemaker_run_delivers_the_model(kfp_cluster: Any, client: Any, no_cache: Any, inputs: Any, s3: Any,
                                          sagemaker: Any) -> None:
    fake = sagemaker("aws-sagemaker")
    got = run(kfp_cluster, client, {"no-cache": no_cache}, "sagemaker", pipeline="no-cache",
              **sagemaker_params("aws-sagemaker"))
    assert state(got) == "SUCCEEDED", kfp_cluster.logs()
    assert fake.names().count("CreateProcessingJob") == 1
    store = kfp_cluster.store()
    (job,) = [e for e in executions_of(store, got.run_id) if e["custom_properties"].get("display_name")
              == "sagemaker-job"]
    model = outputs_of(store, job)["output_model"]
    data = read_uri(s3, model["uri"])
    assert hashlib.sha256(data).hexdigest() == model["custom_properties"]["sha256"]
    assert json.loads(members(data)["hyperparameters.json"]) == HYPERPARAMETERS
    assert model["custom_properties"]["job_arn"].endswith(next(iter(fake.jobs)).lower())
    (log,) = launcher_pods(kfp_cluster, got.run_id).values()
    assert ": Completed" in log


def test_sagemaker_retry_reattaches_to_its_job(kfp_cluster: Any, client: Any, no_cache: Any, inputs: Any,
                                               sagemaker: Any) -> None:
    fake = sagemaker("aws-flaky", fail=1)
    got = run(kfp_cluster, client, {"no-cache": no_cache}, "sagemaker-retry", pipeline="no-cache",
              **sagemaker_params("aws-flaky"))
    assert state(got) == "SUCCEEDED", kfp_cluster.logs()
    assert fake.names().count("CreateProcessingJob") == 1  # one job, not two
    pods = launcher_pods(kfp_cluster, got.run_id)
    logs = {phase(kfp_cluster, name): log for name, log in pods.items()}
    assert sorted(logs) == ["Failed", "Succeeded"]
    assert "AccessDeniedException" in logs["Failed"]
    # the retry finds its job (InProgress: "re-attaching"; already Completed: "reusing it (no new job)")
    assert "re-attaching" in logs["Succeeded"] or "reusing it (no new job)" in logs["Succeeded"]


def test_terminate_during_a_sagemaker_job_stops_it(kfp_cluster: Any, client: Any, no_cache: Any, inputs: Any,
                                                   sagemaker: Any) -> None:
    import threading

    fake = sagemaker("aws-term", gate=threading.Event())  # the job runs until stopped
    pipeline_id, version_id = no_cache
    out = kfp(kfp_cluster, "run", "create", "-e", "dummy-training-cluster", "-r", "terminate", "-p", pipeline_id,
              "-v", version_id, *(f"{k}={v}" for k, v in sagemaker_params("aws-term").items()))
    run_id = json_out(out)["run_id"]
    deadline = time.monotonic() + RUN_TIMEOUT
    while not any(j["ProcessingJobStatus"] == "InProgress" for j in fake.jobs.values()):
        assert time.monotonic() < deadline, kfp_cluster.logs()
        time.sleep(1)
    # kfp 2.17's CLI has no `run terminate`: the SDK (and the UI's Terminate) call the same API
    client.terminate_run(run_id)
    while "StopProcessingJob" not in fake.names():
        assert time.monotonic() < deadline, kfp_cluster.logs()
        time.sleep(1)
    assert [j["ProcessingJobStatus"] for j in fake.jobs.values()] in (["Stopping"], ["Stopped"])
    while state(client.get_run(run_id)) not in ("CANCELED", "FAILED") and time.monotonic() < deadline:
        time.sleep(2)
    assert state(client.get_run(run_id)) in ("CANCELED", "CANCELING", "FAILED")
    (log,) = launcher_pods(kfp_cluster, run_id).values()
    assert "InProgress" in log


# ------------------------------------------------------------------------------------------------------ ACK
NAMESPACE = "kubeflow"
RUNNER = f"system:serviceaccount:{NAMESPACE}:pipeline-runner"
RBAC_YAML = REPO / "components" / "ack_dummy_training" / "rbac.yaml"


@pytest.fixture(scope="module")
def ack_installed(kfp_cluster: Any) -> dict[str, bool]:
    """The ACK controller's ProcessingJob CRD (tests/peers/ack_peer.py) and the RBAC docs/deploy.md tells users to
    apply, components/ack_dummy_training/rbac.yaml as shipped, on the node's control plane. Whether
    ``pipeline-runner`` may create ProcessingJobs in ``kubeflow`` before and after the RBAC is applied (KFP's own
    ``pipeline-runner`` Role, which kfp_cluster.py installs, grants nothing on them)."""
    from ack_peer import processing_job_crd

    from dummy_training import contract

    cp = kfp_cluster.control_plane
    cp.apply(processing_job_crd())

    def allowed() -> bool:
        return bool(cp.can_i(user=RUNNER, verb="create", resource=contract.ACK_PLURAL, group=contract.ACK_GROUP,
                             namespace=NAMESPACE))

    before = allowed()
    cp.apply_files([RBAC_YAML])
    return {"before": before, "after": allowed()}


@pytest.fixture
def ack_controller(kfp_cluster: Any, ack_installed: Any, tmp_path: Path) -> Iterator[Any]:
    """The ACK stand-in (``ack_peer.StandInController``) reconciling the ProcessingJobs of ``kubeflow`` on the node's
    control plane against a FakeSageMaker that plays each job with our engine on the store's objects: the fake."""
    from ack_peer import StandInController
    from fake_sagemaker import FakeSageMaker, PlaySageMaker

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    fake = FakeSageMaker(on_create=PlaySageMaker(kfp_cluster.s3_url, tmp_path / "opt-ml"), background=True)
    with StandInController(kfp_cluster.control_plane, NAMESPACE, fake):
        yield fake


def processing_jobs(cluster: Any) -> list[dict[str, Any]]:
    """Every ProcessingJob of the cluster, in any namespace."""
    from dummy_training import contract

    got = json.loads(cluster.control_plane.get_raw(f"/apis/{contract.ACK_GROUP}/{contract.ACK_VERSION}/"
                                                   f"{contract.ACK_PLURAL}"))
    return list(got["items"])


def test_ack_run_delivers_the_model(kfp_cluster: Any, client: Any, uploaded: Any, inputs: dict[str, bytes], s3: Any,
                                    ack_installed: dict[str, bool], ack_controller: Any) -> None:
    """backend=ack: the launcher pod, as ``pipeline-runner`` with in-cluster config, creates one ProcessingJob in
    the run's namespace through the node's kube-apiserver; the stand-in drives it to Completed; the launcher
    delivers the repacked model, which KFP's launcher uploads as ``output_model``. The pod's Secret has S3 keys
    only: the ACK launcher never calls SageMaker."""
    assert ack_installed == {"before": False, "after": True}, "KFP's Role grants it, or rbac.yaml does not"
    kfp_cluster.control_plane.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "aws-ack", "namespace": NAMESPACE}, "stringData": {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": kfp_cluster.s3_url}})
    params = {**sagemaker_params("aws-ack"), "backend": "ack", "s3_prefix": "s3://mlpipeline/ack"}
    got = run(kfp_cluster, client, uploaded, "ack", **params)
    assert state(got) == "SUCCEEDED", f"{got}\n{kfp_cluster.logs()}"
    for name in ("ack-dummy-training", "check-model-op"):
        assert task_states(got, name) == ["SUCCEEDED"], name
    # one resource, in the run's namespace (the pod's own: the pipeline gives none), one job created
    (obj,) = processing_jobs(kfp_cluster)
    assert obj["metadata"]["namespace"] == NAMESPACE
    assert obj["status"]["processingJobStatus"] == "Completed"
    assert ack_controller.names().count("CreateProcessingJob") == 1
    assert "StopProcessingJob" not in ack_controller.names()
    assert obj["spec"]["processingJobName"] in ack_controller.jobs
    # the launcher pod: pipeline-runner, in-cluster config, created (not re-attached)
    ((pod_name, log),) = launcher_pods(kfp_cluster, got.run_id).items()
    pod = next(p for p in kfp_cluster.pods() if p["metadata"]["name"] == pod_name)
    assert pod["spec"]["serviceAccountName"] == "pipeline-runner"
    assert "using the in-cluster Kubernetes configuration" in log
    assert log.count("INFO creating processingjobs.") == 1, log
    assert f"{obj['metadata']['name']} in namespace {NAMESPACE}" in log
    # the output_model KFP recorded and stored: the repacked archive
    store = kfp_cluster.store()
    (job,) = [e for e in executions_of(store, got.run_id) if e["custom_properties"].get("display_name") == "ack-job"]
    model = outputs_of(store, job)["output_model"]
    assert model["type"] == "system.Model"
    data = read_uri(s3, model["uri"])
    props = model["custom_properties"]
    assert hashlib.sha256(data).hexdigest() == props["sha256"]
    assert props.get("decision") == "injected", props
    got_members = members(data)
    assert json.loads(got_members.pop("hyperparameters.json")) == HYPERPARAMETERS
    assert got_members == members(inputs["minio://mlpipeline/inputs/model.tar.gz"])
    assert props["job_arn"] == obj["status"]["ackResourceMetadata"]["arn"]
    # the job's own output in S3 is the same archive
    assert read_uri(s3, props["model_s3_uri"]) == data
