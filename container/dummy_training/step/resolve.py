"""Where the step's inputs and output are: explicit arguments first, else the contract's search order.

Every resolved location is logged with its label (``[Argument]``, ``[Input Channel]``, ``[Processing Input]``,
``[SOURCE Fallback]``); a missing required input names every place that was searched.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from dummy_training import aws, contract
from dummy_training.ends.base import is_s3_uri
from dummy_training.errors import InputNotFoundError, InvalidInputError, RuntimeIOError
from dummy_training.hyperparameters import parse_hyperparameters

log = logging.getLogger("dummy_training.step.resolve")

MAX_HYPERPARAMETERS_BYTES = 16 << 20
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class Resolved:
    location: str  # local path or s3:// URI
    label: str


@dataclass(frozen=True)
class Hyperparameters:
    data: bytes
    location: str  # path, s3:// URI, or "inline JSON"
    label: str


def _archive_in_dir(directory: Path) -> Path:
    """``DIR/model.tar.gz``, else the only archive in DIR (a processing input keeps the S3 object's name)."""
    preferred = directory / contract.MODEL_FILENAME
    if preferred.is_file():
        return preferred
    archives = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))
    if len(archives) == 1:
        return archives[0]
    if not archives:
        raise InputNotFoundError(f"no {contract.MODEL_FILENAME} (or other .tar.gz/.tgz/.tar) in directory {directory}")
    names = ", ".join(p.name for p in archives)
    raise InvalidInputError(f"directory {directory} holds several archives ({names}); pass the file itself")


def resolve_model(model: str | None) -> Resolved:
    if model:
        if is_s3_uri(model):
            aws.parse_s3_uri(model)
            return Resolved(model, contract.LABEL_FLAG)
        path = Path(model)
        if path.is_dir():
            return Resolved(str(_archive_in_dir(path)), contract.LABEL_FLAG)
        if path.is_file():
            return Resolved(str(path), contract.LABEL_FLAG)
        raise InputNotFoundError(f"model not found: {model}")
    candidates = contract.model_candidates()
    for cand in candidates:
        if cand.path.is_file():
            return Resolved(str(cand.path), cand.label)
        log.debug("model not at %s %s", cand.label, cand.path)
    searched = ", ".join(str(c.path) for c in candidates)
    raise InputNotFoundError(f"no model given ({contract.MODEL.flag}) and none found; searched: {searched}")


def _read_local(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_HYPERPARAMETERS_BYTES:
            raise InvalidInputError(f"hyperparameters file {path} is {size} bytes; the limit is 16 MiB")
        return path.read_bytes()
    except OSError as exc:
        raise RuntimeIOError(f"cannot read hyperparameters {path}: {exc.strerror}") from None


def _read_s3(uri: str, endpoint_url: str | None) -> bytes:
    bucket, key = aws.parse_s3_uri(uri)
    if not key or key.endswith("/"):
        key = key + contract.HYPERPARAMETERS_FILENAME
        uri = aws.s3_uri(bucket, key)
    s3 = aws.client("s3", endpoint_url=endpoint_url)
    with aws.translating(f"read hyperparameters {uri}"):
        head = s3.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > MAX_HYPERPARAMETERS_BYTES:
            raise InvalidInputError(f"hyperparameters {uri} is {head['ContentLength']} bytes; the limit is 16 MiB")
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def resolve_hyperparameters(
    hyperparameters: str | None, hyperparameters_json: str | None, endpoint_url: str | None = None
) -> Hyperparameters | None:
    """The hyperparameters to inject if the archive has none, or None when there are none anywhere.

    Giving both a file and inline JSON is refused (two sources for one file hide a wiring mistake); with
    neither argument the contract's search order is used. An explicitly given location that does not exist is an
    error.
    """
    if hyperparameters_json and hyperparameters:
        raise InvalidInputError(f"give either {contract.HYPERPARAMETERS.flag} or "
                                f"{contract.HYPERPARAMETERS_JSON.flag}, not both")
    if hyperparameters_json:
        data = hyperparameters_json.encode("utf-8")
        parse_hyperparameters(data, "inline JSON")
        return Hyperparameters(data, "inline JSON", contract.LABEL_FLAG)
    if hyperparameters:
        if is_s3_uri(hyperparameters):
            data = _read_s3(hyperparameters, endpoint_url)
        else:
            path = Path(hyperparameters)
            if path.is_dir():
                path = path / contract.HYPERPARAMETERS_FILENAME
            if not path.is_file():
                raise InputNotFoundError(f"hyperparameters not found: {path}")
            data = _read_local(path)
            hyperparameters = str(path)
        parse_hyperparameters(data, hyperparameters)
        return Hyperparameters(data, hyperparameters, contract.LABEL_FLAG)
    for cand in contract.hyperparameters_candidates():
        if cand.path.is_file():
            data = _read_local(cand.path)
            parse_hyperparameters(data, str(cand.path))
            return Hyperparameters(data, str(cand.path), cand.label)
        log.debug("hyperparameters not at %s %s", cand.label, cand.path)
    return None


def hyperparameters_search_description() -> str:
    places = [contract.HYPERPARAMETERS.flag, contract.HYPERPARAMETERS_JSON.flag]
    places += [str(c.path) for c in contract.hyperparameters_candidates()]
    return ", ".join(places)


#: ``scheme://`` (RFC 3986 scheme): a URI, never a local directory name.
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def resolve_output(output_dir: str | None, output_uri: str | None) -> str:
    """The final location of the output model.tar.gz: a local file path or an s3:// object URI."""
    if output_dir and output_uri:
        raise InvalidInputError(f"give {contract.OUTPUT_DIR.flag} or {contract.OUTPUT_URI.flag}, not both")
    if output_uri:
        if not is_s3_uri(output_uri):
            raise InvalidInputError(f"{contract.OUTPUT_URI.flag} must be an s3:// URI, got {output_uri!r}")
        bucket, key = aws.parse_s3_uri(output_uri)
        if not key.endswith((".tar.gz", ".tgz")):
            key = (key.rstrip("/") + "/" if key.strip("/") else "") + contract.MODEL_FILENAME
        return aws.s3_uri(bucket, key)
    if output_dir and _URI_SCHEME.match(output_dir):
        raise InvalidInputError(f"{contract.OUTPUT_DIR.flag} takes a local directory, got the URI {output_dir!r}: "
                                f"to write to S3 use {contract.OUTPUT_URI.flag}")
    directory = Path(output_dir) if output_dir else contract.default_output_dir()
    return str(directory / contract.MODEL_FILENAME)


def same_location(a: str, b: str) -> bool:
    if is_s3_uri(a) or is_s3_uri(b):
        return a == b
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
