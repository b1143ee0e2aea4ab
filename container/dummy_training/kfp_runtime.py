"""What the KFP components run inside the container: kept apart from the component definitions.

The component functions (``dummy_training.kfp_components``) are thin: they import this module and call it.
This module must not use ``kfp.dsl`` at import time: inside a running component (``_KFP_RUNTIME=true``)
``kfp.dsl`` is a reduced runtime module without ``dsl.component``. So no kfp import here at all; artifacts
arrive as objects with ``.path``/``.uri``/``.metadata``.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any, NoReturn

from dummy_training import contract
from dummy_training.local_ends import sha256_file

log = logging.getLogger("dummy_training.kfp")


def fail(exc: BaseException, code: int) -> NoReturn:
    """Fail the task the way the CLI does: one line on stderr, the CLI's exit code."""
    print(f"dummy-training: error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def setup_logging() -> None:
    from dummy_training.cli import setup_logging as cli_setup_logging

    cli_setup_logging()


def repack_into_artifact(
    model_path: str, hyperparameters_path: str | None, hyperparameters_json: str, output: Any
) -> dict[str, Any]:
    """Run the engine from local paths into ``output`` (a KFP ``Output[Model]``); set and return its metadata."""
    from dummy_training import __version__
    from dummy_training.errors import USER_ERRORS
    from dummy_training.repack import run_repack

    setup_logging()
    out_dir = Path(output.path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        result = run_repack(
            model=model_path,
            hyperparameters=hyperparameters_path or None,
            hyperparameters_json=hyperparameters_json or None,
            output_dir=str(out_dir),
        )
    except USER_ERRORS as exc:
        fail(exc, exc.exit_code)
    except OSError as exc:
        fail(exc, 3)
    metadata = {
        "filename": contract.MODEL_FILENAME,
        "decision": result.decision,
        "method": result.method,
        "size": result.output_size,
        "sha256": sha256_file(result.output),
        "member_count": result.member_count,
        "source": result.model_location,
        "hyperparameters_source": result.hyperparameters_location or "",
        "dummy_training_version": __version__,
    }
    output.metadata.update(metadata)
    log.info("output artifact %s: %s", output.uri, json.dumps(metadata, sort_keys=True))
    return metadata


def repack_s3(model: str, hyperparameters: str, hyperparameters_json: str, output_uri: str, endpoint_url: str) -> str:
    """Run the engine S3 to S3 (nothing downloaded into the pod); return the output URI."""
    from dummy_training.errors import USER_ERRORS, InvalidInputError
    from dummy_training.repack import run_repack

    setup_logging()
    try:
        for name, value in ((contract.MODEL.name, model), (contract.OUTPUT_URI.name, output_uri)):
            if not value.startswith("s3://"):
                raise InvalidInputError(f"{name} must be an s3:// URI, got {value!r}")
        result = run_repack(
            model=model,
            hyperparameters=hyperparameters or None,
            hyperparameters_json=hyperparameters_json or None,
            output_uri=output_uri,
            endpoint_url=endpoint_url or None,
        )
    except USER_ERRORS as exc:
        fail(exc, exc.exit_code)
    log.info("output: %s (%s, %d members)", result.output, result.decision, result.member_count)
    return result.output


def _archive_file(path: str | Path) -> Path:
    p = Path(path)
    return p / contract.MODEL_FILENAME if p.is_dir() else p


def scan_hyperparameters(stream: Any, label: str) -> dict[str, Any]:
    """Read a model.tar.gz stream as a packaging step would; return its root hyperparameters.json (a JSON object).

    Deliberately independent of the engine (plain ``tarfile``): it checks the engine's output, not itself.
    Raises ``InputNotFoundError`` when the archive has no root hyperparameters.json and ``InvalidInputError``
    when the archive or the JSON is unreadable.
    """
    from dummy_training.errors import InputNotFoundError, InvalidInputError

    found: dict[str, Any] | None = None
    members = 0
    try:
        # gzip.GzipFile, not tarfile's "r|gz": it verifies the CRC and length, and a truncated stream raises
        # instead of reading as a shorter archive
        with gzip.GzipFile(fileobj=stream, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                members += 1
                if member.name in contract.ROOT_HYPERPARAMETERS_NAMES and member.isfile():
                    fh = tar.extractfile(member)
                    data = json.loads(fh.read()) if fh else None
                    if not isinstance(data, dict):
                        raise InvalidInputError(f"{label}: {member.name} is not a JSON object")
                    found = data
            while gz.read(1 << 20):  # the end-of-archive padding, then the gzip trailer check
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{label}: unreadable archive or JSON: {exc}") from None
    if found is None:
        raise InputNotFoundError(f"{label}: no root {contract.HYPERPARAMETERS_FILENAME} among {members} members")
    return found


def check_archive(path: str | Path) -> dict[str, Any]:
    """``scan_hyperparameters`` of a local model.tar.gz (or of a directory holding one)."""
    from dummy_training.errors import InputNotFoundError

    archive = _archive_file(path)
    if not archive.is_file():
        raise InputNotFoundError(f"no {contract.MODEL_FILENAME} at {archive}")
    with open(archive, "rb") as fh:
        return scan_hyperparameters(fh, str(archive))


def check_s3_archive(uri: str, endpoint_url: str | None = None) -> dict[str, Any]:
    """``scan_hyperparameters`` of an S3 object, streamed (nothing written to disk)."""
    from dummy_training import aws

    bucket, key = aws.parse_s3_uri(uri)
    s3 = aws.client("s3", endpoint_url=endpoint_url or None)
    with aws.translating(f"read {uri}"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return scan_hyperparameters(body, uri)
        finally:
            body.close()


def check_model(model_path: str) -> str:
    """The check step's body: returns the hyperparameters as canonical JSON, fails the task when absent."""
    from dummy_training.errors import USER_ERRORS

    setup_logging()
    try:
        hyperparameters = check_archive(model_path)
    except USER_ERRORS as exc:
        fail(exc, exc.exit_code)
    text = json.dumps(hyperparameters, sort_keys=True)
    log.info("check: %s has a root %s: %s", _archive_file(model_path), contract.HYPERPARAMETERS_FILENAME, text)
    return text


def check_s3_model(model_s3_uri: str, endpoint_url: str = "") -> str:
    """The S3 check step's body: like ``check_model`` for an object in S3."""
    from dummy_training.errors import USER_ERRORS

    setup_logging()
    try:
        hyperparameters = check_s3_archive(model_s3_uri, endpoint_url)
    except USER_ERRORS as exc:
        fail(exc, exc.exit_code)
    text = json.dumps(hyperparameters, sort_keys=True)
    log.info("check: %s has a root %s: %s", model_s3_uri, contract.HYPERPARAMETERS_FILENAME, text)
    return text
