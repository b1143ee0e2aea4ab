"""Judge a local model before a remote job is paid for: would the repack succeed without hyperparameters?

The launchers (SageMaker, ACK) call ``require_own_hyperparameters`` when a local model is given with no
hyperparameters: the engine itself (``engine.archive.repack_archive``, the very scan and decision the job
would run) reads the archive into a sink that keeps nothing. An archive with a root ``hyperparameters.json``
passes (the job will preserve it); one without fails here with the repack's own error and exit code (1), and
a broken archive with the repack's exit 2, before anything is staged or any job created.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from dummy_training.ends.base import ByteSource
from dummy_training.ends.factory import open_source
from dummy_training.errors import InputNotFoundError

log = logging.getLogger(__name__)


class DiscardSink:
    """A ``Sink`` that keeps nothing: the engine's scan and decision without an output."""

    location = "(discarded)"

    def __init__(self) -> None:
        self.seen = 0

    def copy_range(self, source: ByteSource, start: int, end: int) -> None:
        self.seen += end - start

    def write(self, data: bytes) -> None:
        self.seen += len(data)

    def reset(self) -> None:
        self.seen = 0

    def commit(self, metadata: Mapping[str, str] | None = None) -> str:
        return self.location

    def abort(self) -> None:
        pass

    def stats(self) -> Mapping[str, int]:
        return {"bytes_written": self.seen}


def require_own_hyperparameters(model: Path, *, no_job: str = "no job was created") -> str:
    """The engine's decision for ``model`` given no hyperparameters (``preserved``), or the repack's error:
    ``InputNotFoundError`` (exit 1) when the archive has no root hyperparameters.json, ``InvalidInputError``
    (exit 2) when it is not a valid archive. ``no_job`` ends the message."""
    from dummy_training.engine.archive import repack_archive

    log.info("judging %s before staging it: no hyperparameters were given, so it must carry its own", model)
    source = open_source(str(model))
    try:
        result = repack_archive(source, DiscardSink(), None)
    except InputNotFoundError as exc:
        raise InputNotFoundError(f"{model}: {exc} (pass hyperparameters); {no_job}") from None
    finally:
        source.close()
    log.info("%s has a root hyperparameters.json: the job will preserve it", model)
    return result.decision
