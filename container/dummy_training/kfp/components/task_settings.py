"""Task settings a cluster user expects, applied the same way to every task of our pipelines.

``configure(task)`` sets CPU/memory requests and limits, retries with exponential backoff, caching, image pull
policy ``IfNotPresent`` (the kind workflow loads the image into the nodes; nothing to pull) and, when given a
secret name, AWS credentials from that Kubernetes secret as environment variables (``optional``: a missing
secret or key leaves the variable unset, so IRSA / instance roles still work). ``kfp.local`` ignores all of
these; they take effect on a KFP cluster.

This module defines no components (no ``COMPONENTS``); the SageMaker and ACK branches use it too.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Secret key -> environment variable; every key optional. The endpoint keys point boto3 elsewhere than AWS
#: (AWS_ENDPOINT_URL_S3: MinIO & co.; the SageMaker and CloudWatch Logs ones: private endpoints, a test's fake).
#: On KFP's backend a pod gets only these keys (kfp.local's tasks inherit the whole environment): without the
#: SageMaker one, a launcher pod could not be pointed at another SageMaker endpoint (found by the kfp_cluster tier).
AWS_SECRET_KEYS = {
    "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN": "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION": "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3": "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SAGEMAKER": "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
    "AWS_ENDPOINT_URL_STS": "AWS_ENDPOINT_URL_STS",
}
DEFAULT_AWS_SECRET = "aws-credentials"


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


#: The engine streams (at most DUMMY_TRAINING_MEMORY_MB, 256 MB, whatever the model); the limit leaves room for the
#: executor.
REPACK_RESOURCES = Resources(cpu_request="500m", cpu_limit="2", memory_request="512Mi", memory_limit="2Gi")
#: Launchers and checks: a Python process waiting on an API or reading a stream.
SMALL_RESOURCES = Resources(cpu_request="100m", cpu_limit="1", memory_request="256Mi", memory_limit="1Gi")

RETRIES = 2
RETRY_BACKOFF = "30s"
RETRY_BACKOFF_FACTOR = 2.0
RETRY_BACKOFF_MAX = "600s"
IMAGE_PULL_POLICY = "IfNotPresent"


@contextlib.contextmanager
def _cheap_inspect_stack() -> Iterator[None]:
    """kfp's resource setters call ``inspect.stack()`` only to name their caller in an error message; with source
    context for every frame that costs ~0.1 s per call once the kubernetes client is imported (compiling our
    pipelines took 8 s instead of 1). A plain walk of the frames gives the same names."""
    def stack(context: int = 1) -> list[tuple[Any, str, int, str]]:  # (frame, filename, lineno, function)
        frames, frame = [], sys._getframe(1)
        while frame is not None:
            frames.append((frame, frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
            frame = frame.f_back
        return frames

    original = inspect.stack
    inspect.stack = stack
    try:
        yield
    finally:
        inspect.stack = original


def configure(
    task: Any,
    *,
    display_name: str | None = None,
    resources: Resources = REPACK_RESOURCES,
    retries: int = RETRIES,
    caching: bool | None = None,
    aws_secret_name: Any = None,
    timeout_seconds: int | None = None,
) -> Any:
    """Apply the standard settings to a ``PipelineTask``; returns it.

    ``aws_secret_name`` may be a string or a pipeline parameter (the pipelines take it as ``aws_secret_name``).
    ``caching`` None keeps KFP's default: on, unless ``KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT=true`` was set when
    kfp was imported (``KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT=true dummy-training compile --output-dir DIR``
    compiles pipelines that never reuse a result: the SDK's ``enable_caching=False`` at run time reaches only the
    root DAG's tasks, and ours are all inside ``dsl.If``/``dsl.ParallelFor``; seen on KFP's backend).
    """
    from kfp import kubernetes

    if display_name:
        task.set_display_name(display_name)
    with _cheap_inspect_stack():
        task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
        task.set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration=RETRY_BACKOFF, backoff_factor=RETRY_BACKOFF_FACTOR,
                       backoff_max_duration=RETRY_BACKOFF_MAX)
    if caching is not None:
        task.set_caching_options(caching)
    kubernetes.set_image_pull_policy(task, IMAGE_PULL_POLICY)
    if aws_secret_name is not None:
        kubernetes.use_secret_as_env(task, secret_name=aws_secret_name, secret_key_to_env=AWS_SECRET_KEYS,
                                     optional=True)
    if timeout_seconds:
        kubernetes.set_timeout(task, timeout_seconds)
    return task
