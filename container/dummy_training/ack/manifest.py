"""The ACK ``ProcessingJob`` manifest: the SageMaker backend's very request in ACK's field casing.

``build_manifest(spec)`` takes ``processing_job.build_create_processing_job_request(spec)`` (the exact request
the SageMaker backend sends) and converts it with ``to_ack``, so the two backends describe the same job by
construction; ``resource_name`` derives the DNS-1123 ``metadata.name`` from the SageMaker job name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from dummy_training import contract
from dummy_training.errors import InvalidInputError
from dummy_training.sagemaker.processing_job import ProcessingJobSpec, build_create_processing_job_request

# ------------------------------------------------------------------------------------- boto3 -> ACK casing
#: boto3 (SageMaker API) member names whose ACK name is not just the name with a lower-case first letter.
#: ACK's code generator upper-cases the initialisms URI, ARN, ID(s), KMS; every name here was checked against
#: the CRD (tests validate the converted manifests with unknown fields forbidden).
IRREGULAR_NAMES: dict[str, str] = {
    "ImageUri": "imageURI",
    "S3Uri": "s3URI",
    "RoleArn": "roleARN",
    "KmsKeyId": "kmsKeyID",
    "VolumeKmsKeyId": "volumeKMSKeyID",
    "SecurityGroupIds": "securityGroupIDs",
    "VolumeSizeInGB": "volumeSizeInGB",
    "VpcConfig": "vpcConfig",
    "ContainerEntrypoint": "containerEntrypoint",
    "ClusterId": "clusterID",
    "ClusterRoleArn": "clusterRoleARN",
    "OutputS3Uri": "outputS3URI",
}
#: Members whose value is a user map: its keys are data (environment variable names), never renamed.
MAP_MEMBERS = frozenset({"Environment"})


def ack_name(boto_name: str) -> str:
    """The ACK (CRD) field name of a SageMaker API member name."""
    if boto_name in IRREGULAR_NAMES:
        return IRREGULAR_NAMES[boto_name]
    return boto_name[:1].lower() + boto_name[1:]


def to_ack(value: Any) -> Any:
    """A boto3 request (or any part of one) in ACK's casing; lists and scalars keep their shape."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[ack_name(key)] = dict(item) if key in MAP_MEMBERS else to_ack(item)
        return out
    if isinstance(value, list | tuple):
        return [to_ack(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------- manifest
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DEFAULT_LABELS = {"app.kubernetes.io/name": contract.CONSOLE_SCRIPT}


def resource_name(job_name: str) -> str:
    """A DNS-1123 label for ``metadata.name`` derived from a SageMaker job name (deterministic).

    A valid job name is at most 63 letters, digits and hyphens starting and ending alphanumeric; lower-casing it
    gives a valid label. When lower-casing changes it, 8 hex digits of a hash of the original are appended
    (within 63 characters) so ``Job`` and ``job`` name distinct resources."""
    name = job_name.lower()
    if name != job_name:
        digest = hashlib.sha256(job_name.encode()).hexdigest()[:8]
        name = name[: 63 - 9].rstrip("-") + "-" + digest
    if not DNS1123_LABEL_RE.match(name) or len(name) > 63:
        raise InvalidInputError(f"cannot derive a Kubernetes resource name from job name {job_name!r}")
    return name


def build_manifest(spec: ProcessingJobSpec, *, namespace: str | None = None,
                   labels: Mapping[str, str] | None = None,
                   annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ProcessingJob custom resource for ``spec`` (``kubectl apply``-able)."""
    request = build_create_processing_job_request(spec)
    metadata: dict[str, Any] = {"name": resource_name(spec.job_name)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {**DEFAULT_LABELS, **(labels or {})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": contract.ACK_API_VERSION,
        "kind": contract.ACK_KIND,
        "metadata": metadata,
        "spec": to_ack(request),
    }


def manifest_yaml(manifest: Mapping[str, Any]) -> str:
    import yaml  # the [ack] extra

    return yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)
