"""Put a remote job's inputs in S3 before the job is created: shared by the SageMaker and the ACK launchers.

Two steps. ``plan_inputs`` decides, with no AWS call, which S3 URI each input will be at (what the
CreateProcessingJob request names, what ``--dry-run`` prints, what a re-attach compares); ``stage_inputs``
checks the S3 sources and puts the inputs there, all checks BEFORE any upload, so a typo never bills an instance:

- model, ``s3://`` URI: checked with HeadObject (missing -> ``InputNotFoundError`` naming the URI). A URI
  ending in ``/`` is a "directory" holding ``model.tar.gz``. In staged mode a key not named ``model.tar.gz`` is
  copied server-side to ``<staging_prefix>/input/model/s3-<hash of the source URI>/model.tar.gz`` (the
  container looks for that name in its input directory); an object already named ``model.tar.gz`` is used
  where it is.
- model, local file or directory holding ``model.tar.gz``: uploaded (multipart, parallel) to
  ``<staging_prefix>/input/model/sha256-<its SHA-256>/model.tar.gz``. The key is the content's digest, so the
  request names what is staged: the same file gives the same request (a retry re-attaches to its job), another
  file another request (a launch under a used job name is refused, never given the other run's output). The
  upload records the digest in the object's metadata too; an object of the same size and digest already there
  (a retried task) is not uploaded again.
- hyperparameters: the same for ``hyperparameters.json`` under ``<staging_prefix>/input/config/``; the JSON
  must be an object (checked locally, and for small S3 objects by reading them), else ``InvalidInputError``.
- hyperparameters_json: inline JSON, must parse as an object; uploaded as ``hyperparameters.json`` (sorted
  keys, so the same object gives the same digest).
- ``hyperparameters`` AND ``hyperparameters_json`` both given: refused (``InvalidInputError``). Two sources
  for one file is ambiguous and silently preferring one hides a mistake in the pipeline wiring
  (``dummy-training repack`` refuses the same, so every backend behaves alike).
- neither: ``hyperparameters_s3_uri`` is None; the archive may carry its own (the launchers judge a local model
  before staging it: ``step.judge``).

An S3 input is identified by its URI, as SageMaker identifies it in the request: an object overwritten under
the same URI is the same input.

``s3_direct=True`` (the job repacks S3 to S3 itself): ``s3://`` inputs are only checked, never copied, since
the container reads any key name directly; local inputs are still uploaded.
"""

from __future__ import annotations

import hashlib
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


#: How a planned input gets to its S3 URI.
LOCAL, INLINE, S3_IN_PLACE, S3_COPY = "local file", "inline JSON", "S3, in place", "S3, server-side copy"


@dataclass(frozen=True)
class PlannedInput:
    """One input of the job: where it comes from and the S3 URI the job reads it at."""

    what: str  # "model" | "hyperparameters"
    kind: str  # LOCAL | INLINE | S3_IN_PLACE | S3_COPY
    source: str  # the local path, the source s3:// URI, or "inline JSON"
    uri: str  # where the job reads it
    sha256: str | None = None  # of a local file or the inline body
    body: bytes | None = None  # the inline JSON as uploaded
    check_json: bool = False  # an S3 source whose content must be a JSON object


@dataclass(frozen=True)
class InputPlan:
    model: PlannedInput
    hyperparameters: PlannedInput | None

    def staged(self) -> StagedInputs:
        return StagedInputs(self.model.uri, self.hyperparameters.uri if self.hyperparameters else None)

    def local_model_path(self) -> Path | None:
        return Path(self.model.source) if self.model.kind == LOCAL else None


def _content_dir(digest: str) -> str:
    return f"sha256-{digest}"


def _source_dir(uri: str) -> str:
    return "s3-" + hashlib.sha256(uri.encode()).hexdigest()[:16]


def staged_model_uri(staging_prefix: str, content: str) -> str:
    """``<staging_prefix>/input/model/<content>/model.tar.gz``; ``content`` names the staged bytes."""
    return join_s3(staging_prefix, "input", contract.PROCESSING_INPUT_MODEL, content, contract.MODEL_FILENAME)


def staged_hyperparameters_uri(staging_prefix: str, content: str) -> str:
    return join_s3(staging_prefix, "input", contract.PROCESSING_INPUT_HYPERPARAMETERS, content,
                   contract.HYPERPARAMETERS_FILENAME)


def plan_inputs(*, model: str, hyperparameters: str | None, hyperparameters_json: str | None,
                staging_prefix: str, s3_direct: bool = False) -> InputPlan:
    """Where every input will be, with no AWS call (local files are read: their digest names their key).
    Raises what a bad input deserves (missing local file, JSON that is not an object, both sources)."""
    hyperparameters = hyperparameters or None
    hyperparameters_json = hyperparameters_json or None
    if not model:
        raise InvalidInputError(f"{contract.MODEL.flag} is required")
    if hyperparameters and hyperparameters_json:
        raise InvalidInputError(f"give either {contract.HYPERPARAMETERS.flag} or "
                                f"{contract.HYPERPARAMETERS_JSON.flag}, not both")
    parse_s3_uri(staging_prefix)
    hp: PlannedInput | None = None
    if hyperparameters_json:
        obj = parse_hyperparameters(hyperparameters_json.encode("utf-8"), "inline JSON")
        body = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
        digest = hashlib.sha256(body).hexdigest()
        hp = PlannedInput("hyperparameters", INLINE, "inline JSON",
                          staged_hyperparameters_uri(staging_prefix, _content_dir(digest)), digest, body)
    elif hyperparameters:
        hp = _plan_one(hyperparameters, contract.HYPERPARAMETERS_FILENAME, "hyperparameters", staging_prefix,
                       staged_hyperparameters_uri, s3_direct=s3_direct, check_json=True)
    planned_model = _plan_one(model, contract.MODEL_FILENAME, "model", staging_prefix, staged_model_uri,
                              s3_direct=s3_direct)
    return InputPlan(planned_model, hp)


def _plan_one(source: str, filename: str, what: str, staging_prefix: str, target: Any, *, s3_direct: bool,
              check_json: bool = False) -> PlannedInput:
    if source.startswith("s3://"):
        uri = source + filename if source.endswith("/") else source
        parse_s3_uri(uri)
        if s3_direct or uri.rsplit("/", 1)[-1] == filename:
            return PlannedInput(what, S3_IN_PLACE, uri, uri, check_json=check_json)
        return PlannedInput(what, S3_COPY, uri, target(staging_prefix, _source_dir(uri)), check_json=check_json)
    path = _local_file(source, filename, what)
    if check_json:
        parse_hyperparameters(path.read_bytes(), str(path))
    digest = sha256_file(path)
    return PlannedInput(what, LOCAL, str(path), target(staging_prefix, _content_dir(digest)), digest)


def stage_inputs(s3_client: Any, *, model: str, hyperparameters: str | None, hyperparameters_json: str | None,
                 staging_prefix: str, s3_direct: bool = False, plan: InputPlan | None = None) -> StagedInputs:
    """Check and stage the job's inputs; see the module docstring. Empty strings count as "not given".
    ``plan`` (from ``plan_inputs`` with the same arguments) saves planning (reading local files) twice."""
    if plan is None:
        plan = plan_inputs(model=model, hyperparameters=hyperparameters, hyperparameters_json=hyperparameters_json,
                           staging_prefix=staging_prefix, s3_direct=s3_direct)
    inputs = [p for p in (plan.model, plan.hyperparameters) if p is not None]
    for planned in inputs:  # check every S3 source before uploading or copying anything
        if planned.kind in (S3_IN_PLACE, S3_COPY):
            _check_s3(s3_client, planned)
    for planned in inputs:
        if planned.kind == S3_COPY:
            _copy(s3_client, planned)
        elif planned.kind == INLINE:
            assert planned.body is not None
            bucket, key = parse_s3_uri(planned.uri)
            with translating(f"upload inline hyperparameters to {planned.uri}"):
                s3_client.put_object(Bucket=bucket, Key=key, Body=planned.body, ContentType="application/json",
                                     Metadata={STAGED_SHA256_META: planned.sha256 or ""})
            log.info("staged inline hyperparameters JSON -> %s", planned.uri)
        elif planned.kind == LOCAL:
            _upload_if_changed(s3_client, Path(planned.source), planned.uri, planned.sha256)
    return plan.staged()


# ------------------------------------------------------------------------------------------------ internals
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


def _check_s3(s3_client: Any, planned: PlannedInput) -> None:
    uri = planned.source
    try:
        head = _head(s3_client, uri)
    except InputNotFoundError:
        raise InputNotFoundError(f"{planned.what} not found: {uri} (no such object; no job was created)") from None
    if planned.check_json and head.get("ContentLength", 0) <= MAX_CHECKED_JSON_BYTES:
        bucket, key = parse_s3_uri(uri)
        with translating(f"read {uri}"):
            body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        parse_hyperparameters(body, uri)
    if planned.kind == S3_IN_PLACE:
        log.info("%s: using %s where it is (%s bytes)", planned.what, uri, head.get("ContentLength"))


def _copy(s3_client: Any, planned: PlannedInput) -> None:
    # A processing job downloads the object under its own key name; the container looks for the contract name.
    src_bucket, src_key = parse_s3_uri(planned.source)
    dst_bucket, dst_key = parse_s3_uri(planned.uri)
    with translating(f"copy {planned.source} to {planned.uri}"):
        s3_client.copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key)
    log.info("%s: copied %s -> %s (server-side)", planned.what, planned.source, planned.uri)


def _upload_if_changed(s3_client: Any, path: Path, target_uri: str, digest: str | None = None) -> None:
    from boto3.s3.transfer import TransferConfig

    bucket, key = parse_s3_uri(target_uri)
    size = path.stat().st_size
    digest = digest or sha256_file(path)
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
