"""Judge a local model before a remote job is paid for: would the repack in the job succeed?

The launchers (SageMaker, ACK: launch, manifest, dry run) call ``judge_local_model`` on every local model before
anything is staged or created: the engine itself (``engine.archive.repack_archive``, the very scan, validation and
decision the job would run) reads the archive into a sink that keeps nothing. A hostile or broken archive fails
here with the repack's own one-line error and exit 2, whatever hyperparameters are given. Given no
hyperparameters, an archive without a root ``hyperparameters.json`` fails too, with the repack's exit 1
(``require_own_hyperparameters``); given some, it passes (the job will inject them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from dummy_training.ends.base import ByteSource
from dummy_training.ends.factory import open_source
from dummy_training.errors import InputNotFoundError, InvalidInputError

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


def _located(model: Path, exc: Exception) -> str:
    """The engine's message, prefixed with the model's path unless it already names it."""
    return str(exc) if str(model) in str(exc) else f"{model}: {exc}"


def judge_local_model(model: Path, *, hyperparameters_given: bool, no_job: str = "no job was created") -> str:
    """The decision the job's repack will take for the local ``model`` (``injected`` or ``preserved``), or its
    error: ``InvalidInputError`` (exit 2) for an archive the engine refuses, ``InputNotFoundError`` (exit 1) when
    no hyperparameters are given and the archive has no root hyperparameters.json. ``no_job`` ends the message
    of either. One pass over the archive; nothing is written."""
    if not hyperparameters_given:
        return require_own_hyperparameters(model, no_job=no_job)
    from dummy_training.contract import DECISION_INJECTED
    from dummy_training.engine.archive import repack_archive

    log.info("judging %s before staging it", model)
    source = open_source(str(model))
    try:
        # the hyperparameters are not needed to judge: without them the engine validates the whole archive and
        # stops where it would inject
        return repack_archive(source, DiscardSink(), None).decision
    except InputNotFoundError:
        return DECISION_INJECTED
    except InvalidInputError as exc:
        raise InvalidInputError(f"{_located(model, exc)}; {no_job}") from None
    finally:
        source.close()


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
    except InvalidInputError as exc:
        raise InvalidInputError(f"{_located(model, exc)}; {no_job}") from None
    finally:
        source.close()
    log.info("%s has a root hyperparameters.json: the job will preserve it", model)
    return result.decision
