"""Put a remote job's inputs in S3 before the job is created: shared by the SageMaker and the ACK launchers.

``stage_inputs`` turns what the user gave (an ``s3://`` URI, a local file or a directory holding the file, or
for hyperparameters an inline JSON object) into S3 URIs a processing job can read, and checks them all BEFORE
any job is created, so a typo never bills an instance:

- model, ``s3://`` URI: checked with HeadObject (missing -> ``InputNotFoundError`` naming the URI). A URI
  ending in ``/`` is a "directory" holding ``model.tar.gz``. In staged mode a key not named ``model.tar.gz`` is
  copied server-side to ``<staging_prefix>/input/model/model.tar.gz`` (the container looks for that name in
  its input directory); an object already named ``model.tar.gz`` is used where it is.
- model, local file or directory holding ``model.tar.gz``: uploaded (multipart, parallel) to
  ``<staging_prefix>/input/model/model.tar.gz``. The upload records the file's SHA-256 in the object's
  metadata; when an object of the same size and digest is already there (a retried task) it is not uploaded
  again.
- hyperparameters: the same for ``hyperparameters.json`` under ``<staging_prefix>/input/config/``; the JSON
  must be an object (checked locally, and for small S3 objects by reading them), else ``InvalidInputError``.
- hyperparameters_json: inline JSON, must parse as an object; uploaded as ``hyperparameters.json``.
- ``hyperparameters`` AND ``hyperparameters_json`` both given: refused (``InvalidInputError``). Two sources
  for one file is ambiguous and silently preferring one hides a mistake in the pipeline wiring
  (``dummy-training repack`` refuses the same, so every backend behaves alike).
- neither: ``hyperparameters_s3_uri`` is None; the archive may carry its own, the remote repack fails clearly
  if it has none.

``s3_direct=True`` (the job repacks S3 to S3 itself): ``s3://`` inputs are only checked, never copied, since
the container reads any key name directly; local inputs are still uploaded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dummy_training import contract
from dummy_training.aws import join_s3, parse_s3_uri, translating
from dummy_training.ends.local_file import sha256_file
from dummy_training.errors import InputNotFoundError, InvalidInputError
from dummy_training.hyperparameters import parse_hyperparameters

log = logging.getLogger(__name__)

#: Object metadata key holding the SHA-256 of a staged local file (to skip re-uploading on a retry).
STAGED_SHA256_META = "dummy-training-sha256"
#: S3 hyperparameters objects up to this size are read and checked to be a JSON object before the job starts.
MAX_CHECKED_JSON_BYTES = 1 << 20
_MULTIPART_THRESHOLD = 64 << 20
_MULTIPART_CHUNK = 64 << 20


@dataclass
class StagedInputs:
    model_s3_uri: str
    hyperparameters_s3_uri: str | None


def staged_model_uri(staging_prefix: str) -> str:
    return join_s3(staging_prefix, "input", contract.PROCESSING_INPUT_MODEL, contract.MODEL_FILENAME)


def staged_hyperparameters_uri(staging_prefix: str) -> str:
    return join_s3(staging_prefix, "input", contract.PROCESSING_INPUT_HYPERPARAMETERS,
                   contract.HYPERPARAMETERS_FILENAME)


def stage_inputs(s3_client: Any, *, model: str, hyperparameters: str | None, hyperparameters_json: str | None,
                 staging_prefix: str, s3_direct: bool = False) -> StagedInputs:
    """Check and stage the job's inputs; see the module docstring. Empty strings count as "not given"."""
    hyperparameters = hyperparameters or None
    hyperparameters_json = hyperparameters_json or None
    if not model:
        raise InvalidInputError(f"{contract.MODEL.flag} is required")
    if hyperparameters and hyperparameters_json:
        raise InvalidInputError(f"give either {contract.HYPERPARAMETERS.flag} or "
                                f"{contract.HYPERPARAMETERS_JSON.flag}, not both")
    parse_s3_uri(staging_prefix)

    # check everything before uploading anything
    hp_obj: dict[str, Any] | None = None
    if hyperparameters_json:
        hp_obj = parse_hyperparameters(hyperparameters_json.encode("utf-8"), "inline JSON")

    model_uri = _stage_one(s3_client, model, contract.MODEL_FILENAME, staged_model_uri(staging_prefix),
                           "model", s3_direct=s3_direct)
    hp_uri: str | None = None
    if hp_obj is not None:
        hp_uri = staged_hyperparameters_uri(staging_prefix)
        body = (json.dumps(hp_obj, indent=2, sort_keys=True) + "\n").encode()
        bucket, key = parse_s3_uri(hp_uri)
        with translating(f"upload inline hyperparameters to {hp_uri}"):
            s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        log.info("staged inline hyperparameters JSON -> %s", hp_uri)
    elif hyperparameters:
        hp_uri = _stage_one(s3_client, hyperparameters, contract.HYPERPARAMETERS_FILENAME,
                            staged_hyperparameters_uri(staging_prefix), "hyperparameters",
                            s3_direct=s3_direct, check_json=True)
    return StagedInputs(model_s3_uri=model_uri, hyperparameters_s3_uri=hp_uri)


# ------------------------------------------------------------------------------------------------ internals
def _stage_one(s3_client: Any, source: str, filename: str, target_uri: str, what: str, *, s3_direct: bool,
               check_json: bool = False) -> str:
    if source.startswith("s3://"):
        return _stage_s3(s3_client, source, filename, target_uri, what, s3_direct=s3_direct,
                         check_json=check_json)
    path = _local_file(source, filename, what)
    if check_json:
        parse_hyperparameters(path.read_bytes(), str(path))
    _upload_if_changed(s3_client, path, target_uri)
    return target_uri


def _local_file(source: str, filename: str, what: str) -> Path:
    path = Path(source)
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise InputNotFoundError(f"{what} not found: {path}")
    return path


def _head(s3_client: Any, uri: str) -> dict[str, Any]:
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise InvalidInputError(f"S3 URI has no key: {uri!r}")
    with translating(f"check {uri}"):
        return s3_client.head_object(Bucket=bucket, Key=key)


def _stage_s3(s3_client: Any, uri: str, filename: str, target_uri: str, what: str, *, s3_direct: bool,
              check_json: bool) -> str:
    if uri.endswith("/"):
        uri = uri + filename
    try:
        head = _head(s3_client, uri)
    except InputNotFoundError:
        raise InputNotFoundError(f"{what} not found: {uri} (no such object; no job was created)") from None
    if check_json and head.get("ContentLength", 0) <= MAX_CHECKED_JSON_BYTES:
        bucket, key = parse_s3_uri(uri)
        with translating(f"read {uri}"):
            body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        parse_hyperparameters(body, uri)
    if s3_direct or uri.rsplit("/", 1)[-1] == filename:
        log.info("%s: using %s where it is (%s bytes)", what, uri, head.get("ContentLength"))
        return uri
    # A processing job downloads the object under its own key name; the container looks for ``filename``.
    src_bucket, src_key = parse_s3_uri(uri)
    dst_bucket, dst_key = parse_s3_uri(target_uri)
    with translating(f"copy {uri} to {target_uri}"):
        s3_client.copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key)
    log.info("%s: copied %s -> %s (server-side)", what, uri, target_uri)
    return target_uri


def _upload_if_changed(s3_client: Any, path: Path, target_uri: str) -> None:
    from boto3.s3.transfer import TransferConfig

    bucket, key = parse_s3_uri(target_uri)
    size = path.stat().st_size
    digest = sha256_file(path)
    try:
        with translating(f"check {target_uri}"):
            head = s3_client.head_object(Bucket=bucket, Key=key)
    except InputNotFoundError:
        head = None
    if head and head.get("ContentLength") == size and head.get("Metadata", {}).get(STAGED_SHA256_META) == digest:
        log.info("staged %s already at %s (same size and SHA-256): not uploading again", path, target_uri)
        return
    config = TransferConfig(multipart_threshold=_MULTIPART_THRESHOLD, multipart_chunksize=_MULTIPART_CHUNK)
    log.info("staging %s (%d bytes) -> %s", path, size, target_uri)
    with translating(f"upload {path} to {target_uri}"):
        s3_client.upload_file(str(path), bucket, key, Config=config,
                              ExtraArgs={"Metadata": {STAGED_SHA256_META: digest}})
