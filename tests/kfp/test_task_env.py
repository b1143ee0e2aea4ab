"""What a task's pod gets from the AWS Secret on KFP's backend.

On a cluster a pod's environment is its spec: KFP's backend gives a task only the Secret keys the compiled YAML
maps (kfp-kubernetes ``secretAsEnv``), where ``kfp.local`` runs each task with the whole environment of the caller.
So every AWS service our components call must have its boto3 endpoint variable mapped, or the launcher pods cannot
be pointed at anything but AWS (the kfp_cluster tier found the SageMaker one missing: tests/peers/test_kfp_cluster.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from dummy_training.kfp.components import task_settings as ts

REPO = Path(__file__).resolve().parents[2]
#: the AWS services the components' code calls (S3: every component; SageMaker and CloudWatch Logs: the SageMaker
#: launcher; STS: a launcher given assume_role_arn)
SERVICES = ("s3", "sagemaker", "logs", "sts")


def endpoint_variable(service: str) -> str:
    """The variable boto3 reads for ``service``'s endpoint: ``AWS_ENDPOINT_URL_`` + its service id, upper-cased,
    spaces as underscores (botocore's config provider)."""
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return "AWS_ENDPOINT_URL_" + client.meta.service_model.service_id.upper().replace(" ", "_")


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_endpoint_variable_is_mapped(service: str) -> None:
    assert ts.AWS_SECRET_KEYS.get(endpoint_variable(service)) == endpoint_variable(service)


def secret_envs(path: Path) -> list[dict[str, Any]]:
    _, platform = list(yaml.safe_load_all(path.read_text()))
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return [s for config in executors.values() for s in config.get("secretAsEnv", [])]


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_compiled_tasks_map_every_key_optionally(path: Path) -> None:
    envs = secret_envs(path)
    assert envs
    for secret in envs:
        assert secret["optional"] is True
        assert {m["secretKey"]: m["envVar"] for m in secret["keyToEnv"]} == ts.AWS_SECRET_KEYS
