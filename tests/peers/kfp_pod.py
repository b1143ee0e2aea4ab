"""The executor pod KFP 2.17 makes for one of our tasks (tests/kfp_task.py), as a plain pod spec.

What the 2.17 compiler and driver put into it (``backend/src/v2/compiler/argocompiler/container.go``,
``security_context.go``, ``common.go``; ``driver/driver.go`` ``initPodSpecPatch``, ``driver/k8s.go``):

- the container ``main``: the compiled image, the resources of the executor (``resourceCpuLimit`` ...),
  ``imagePullPolicy`` of the platform spec, the env ``KFP_POD_NAME``/``KFP_POD_UID`` (field refs),
  ``KFP_RETRY_INDEX`` (the executor has a retry strategy), the container env of the spec, then each
  ``secretAsEnv`` key as a ``secretKeyRef`` with its ``optional``; the container's security context
  (``allowPrivilegeEscalation: false``, every capability dropped, seccomp ``RuntimeDefault``; no user: the
  image's own non-root user runs) and the pod's (seccomp ``RuntimeDefault``);
- the scratch emptyDirs ``/kfp-launcher``, ``/gcs``, ``/s3``, ``/minio``, ``/.local``, ``/.cache``, ``/.config``;
- the run's ServiceAccount (``pipeline-runner``), its token automounted; Argo's ``restartPolicy: Never``.

What differs, and why: the command is the component's own (``sh -ec ...`` with the executor input), not
``/kfp-launcher/launch ... -- <that command>`` behind Argo's emissary: the launcher (copied in by an init container
from KFP's image) publishes the outputs to MinIO and ML Metadata, neither of which is here. The outputs stay in
``/minio``; with ``minio_host_dir`` that one volume is a hostPath the test reads them from (the launcher's upload
stands in for).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kfp_task import SCRATCH_VOLUMES, KfpTask

RUNNER_SA = "pipeline-runner"
AWS_SECRET = "aws-credentials"
LABEL = "dummy-training/node-case"
#: task_settings' RETRY count: the executor template has a retryStrategy, so Argo injects the attempt index
RETRY_INDEX_ENV = "KFP_RETRY_INDEX"


def _resources(task: KfpTask) -> dict[str, dict[str, str]]:
    r = task.resources
    out: dict[str, dict[str, str]] = {}
    for kind, cpu, mem in (("requests", "resourceCpuRequest", "resourceMemoryRequest"),
                           ("limits", "resourceCpuLimit", "resourceMemoryLimit")):
        got = {k: r[key] for k, key in (("cpu", cpu), ("memory", mem)) if key in r}
        if got:
            out[kind] = got
    return out


def secret_env(task: KfpTask, secret: str) -> list[dict[str, Any]]:
    """The driver's env for the executor's ``secretAsEnv`` with the secret name ``secret``."""
    env = []
    for entry in task.secret_as_env:
        for key in entry["keyToEnv"]:
            ref: dict[str, Any] = {"name": secret, "key": key["secretKey"]}
            if "optional" in entry:
                ref["optional"] = bool(entry["optional"])
            env.append({"name": key["envVar"], "valueFrom": {"secretKeyRef": ref}})
    return env


def kfp_pod(task: KfpTask, *, name: str, image: str, namespace: str = "kubeflow",
            service_account: str = RUNNER_SA, aws_secret: str = AWS_SECRET, env: dict[str, str] | None = None,
            minio_host_dir: Path | None = None, grace_seconds: int | None = None,
            image_pull_policy: str | None = None) -> dict[str, Any]:
    """The pod running ``task`` with ``image`` (the compiled image as the node knows it) as ``service_account``;
    ``env`` is the container env of the spec (what ``task.set_env_variable`` compiles to)."""
    field_env = [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}}
                 for n, p in (("KFP_POD_NAME", "metadata.name"), ("KFP_POD_UID", "metadata.uid"))]
    volumes: list[dict[str, Any]] = [
        {"name": v, "hostPath": {"path": str(minio_host_dir), "type": "Directory"}}
        if v == "minio-scratch" and minio_host_dir is not None else {"name": v, "emptyDir": {}}
        for v in SCRATCH_VOLUMES]
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": image_pull_policy or task.image_pull_policy or "IfNotPresent",
        "command": task.argv[:3],
        "args": task.argv[3:],
        "env": [*field_env, {"name": RETRY_INDEX_ENV, "value": "0"},
                *({"name": k, "value": v} for k, v in (env or {}).items()),
                *secret_env(task, aws_secret)],
        "resources": _resources(task),
        "volumeMounts": [{"name": v, "mountPath": p} for v, p in SCRATCH_VOLUMES.items()],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "restartPolicy": "Never",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if grace_seconds is not None:
        spec["terminationGracePeriodSeconds"] = grace_seconds
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"pipelines.kubeflow.org/v2_component": "true", LABEL: name}},
        "spec": spec,
    }


# ------------------------------------------------------------------------------------------- our tasks
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
JOB_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0"
REGION = "us-east-1"
HP = {"epochs": 3, "lr": "0.01"}


def aws_secret(name: str, *, access_key: str, secret_key: str, s3_endpoint: str,
               namespace: str = "kubeflow") -> dict[str, Any]:
    """The Secret a KFP user creates for the tasks' ``secretAsEnv`` (keys of task_settings.AWS_SECRET_KEYS)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "stringData": {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
                           "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL_S3": s3_endpoint}}


def launcher_task(backend: str, *, model: str, s3_prefix: str, s3_endpoint: str, run_id: str) -> KfpTask:
    """The ``ack_dummy_training`` or ``sagemaker_dummy_training`` task of run ``run_id``: ``model`` (an s3:// URI)
    repacked with ``HP`` through ``s3_prefix``. The ACK launcher's ``endpoint_url`` is ``s3_endpoint`` (it is S3's
    only); the SageMaker launcher's is for S3, SageMaker and CloudWatch Logs alike, so it is left empty and each
    service's endpoint comes from the environment (``AWS_ENDPOINT_URL_S3`` from the Secret, the others from the
    container env: ``case_pod``)."""
    from kfp_task import kfp_task

    arguments = {"model": model, "role_arn": ROLE, "image_uri": JOB_IMAGE, "s3_prefix": s3_prefix,
                 "hyperparameters_json": json.dumps(HP), "region": REGION}
    if backend == "ack":
        arguments["endpoint_url"] = s3_endpoint
    return kfp_task(f"{backend}_dummy_training", arguments, run_id=run_id)


def s3_task(*, model: str, output_uri: str, s3_endpoint: str, run_id: str) -> KfpTask:
    """The ``dummy_training_s3`` task of run ``run_id``: ``model`` to ``output_uri`` with ``HP``."""
    from kfp_task import kfp_task

    return kfp_task("dummy_training_s3", {"model": model, "output_uri": output_uri,
                                          "hyperparameters_json": json.dumps(HP), "endpoint_url": s3_endpoint},
                    run_id=run_id)


#: a ServiceAccount of the run's namespace without components/ack_dummy_training/rbac.yaml's binding
NO_RBAC_SA = "no-processingjobs"
#: the secret name a run passes when nobody created that Secret
MISSING_SECRET = "aws-credentials-missing"
CASES = ("ack", "ack-no-rbac", "sagemaker", "sagemaker-no-secret", "s3")


def case_pod(case: str, *, image: str, bucket: str, s3_endpoint: str, sagemaker_endpoint: str = "",
             run_id: str, minio_host_dir: Path | None = None,
             grace_seconds: int | None = None) -> tuple[KfpTask, dict[str, Any]]:
    """(task, pod) of one of ``CASES``: the model at ``s3://bucket/in/model.tar.gz``; launchers stage under
    ``s3://bucket/runs``, the S3 component writes ``s3://bucket/out/<run_id>/model.tar.gz``. The SageMaker
    launcher's SageMaker and CloudWatch Logs endpoints come from the container env (``set_env_variable``), its
    keys from the Secret; ``-no-rbac`` runs as ``NO_RBAC_SA``, ``-no-secret`` names ``MISSING_SECRET``."""
    if case not in CASES:
        raise KeyError(case)
    model = f"s3://{bucket}/in/model.tar.gz"
    env: dict[str, str] = {}
    if case == "s3":
        task = s3_task(model=model, output_uri=f"s3://{bucket}/out/{run_id}/model.tar.gz", s3_endpoint=s3_endpoint,
                       run_id=run_id)
    else:
        backend = case.split("-")[0]
        task = launcher_task(backend, model=model, s3_prefix=f"s3://{bucket}/runs", s3_endpoint=s3_endpoint,
                             run_id=run_id)
        if backend == "sagemaker":
            env = {"AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_endpoint,
                   "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": s3_endpoint}
    pod = kfp_pod(task, name=f"{case}-{run_id}"[:63], image=image, env=env, minio_host_dir=minio_host_dir,
                  service_account=NO_RBAC_SA if case.endswith("no-rbac") else RUNNER_SA,
                  aws_secret=MISSING_SECRET if case.endswith("no-secret") else AWS_SECRET,
                  grace_seconds=grace_seconds)
    return task, pod
