"""Records every AWS operation the package's own clients call (``aws.CLIENT_HOOKS`` + botocore
``provide-client-params``, which sees the API parameters), by who calls it: ``launcher`` (clients made by
dummy_training.sagemaker), ``ack-launcher`` (dummy_training.ack) or ``repack`` (the step, its S3 ends and the KFP
components' runtime: what the S3 component's pod, or an s3_direct job, does). Installed for the whole session by
conftest; tests/test_iam_policies.py checks docs/iam/ grants every recorded call."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent.parent / "container" / "dummy_training"
#: owner -> {(IAM action, resource ARN)}
RECORDED: dict[str, set[tuple[str, str]]] = defaultdict(set)


def _owner() -> str | None:
    """Who is creating the client: the first frame in the package outside aws.py."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if PACKAGE in path.parents and path.name != "aws.py":
            rel = path.relative_to(PACKAGE).parts
            return {"sagemaker": "launcher", "ack": "ack-launcher"}.get(rel[0], "repack")
        frame = frame.f_back
    return None


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def actions(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The IAM actions (with the resource each applies to) one API call needs."""
    if service == "s3":
        bucket, key = params.get("Bucket", ""), params.get("Key")
        obj = _s3_arn(bucket, key or "")
        read = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
        if operation in ("GetObject", "HeadObject"):
            return [(read, obj)]
        if operation in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            return [("s3:PutObject", obj)]
        if operation in ("UploadPartCopy", "CopyObject"):
            source = params.get("CopySource")
            if isinstance(source, dict):
                src_bucket, src_key, version = source["Bucket"], source["Key"], source.get("VersionId")
            else:
                path, _, query = str(source).lstrip("/").partition("?")
                src_bucket, _, src_key = path.partition("/")
                version = "versionId=" in query
            src_read = "s3:GetObjectVersion" if version else "s3:GetObject"
            return [(src_read, _s3_arn(src_bucket, src_key)), ("s3:PutObject", obj)]
        if operation == "AbortMultipartUpload":
            return [("s3:AbortMultipartUpload", obj)]
        if operation == "ListParts":
            return [("s3:ListMultipartUploadParts", obj)]
        if operation in ("ListObjectsV2", "ListObjects", "HeadBucket"):
            return [("s3:ListBucket", _s3_arn(bucket))]
        return [(f"s3:{operation}", obj)]
    if service == "sagemaker":
        name = params.get("ProcessingJobName", "")
        job = f"arn:aws:sagemaker:*:*:processing-job/{name.lower()}"
        out = [(f"sagemaker:{operation}", job)]
        if operation == "CreateProcessingJob":
            out.append(("iam:PassRole", params.get("RoleArn", "")))
            if params.get("Tags"):
                out.append(("sagemaker:AddTags", job))
        return out
    if service == "logs":
        return [(f"logs:{operation}", "arn:aws:logs:*:*:log-group:/aws/sagemaker/ProcessingJobs:*")]
    if service == "sts":
        return [(f"sts:{operation}", params.get("RoleArn", "*"))]
    return [(f"{service}:{operation}", "*")]


def hook(client: Any) -> None:
    owner = _owner()
    if owner is None:
        return
    service = client.meta.service_model.service_name

    def record(model: Any, params: dict[str, Any], **_kw: Any) -> None:
        RECORDED[owner].update(actions(service, model.name, params))

    client.meta.events.register("provide-client-params", record)
