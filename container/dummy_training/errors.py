"""User-facing errors and the exit codes they map to.

Every error a user can cause or fix is one of these, printed as one line on stderr by the CLI. Anything else
is a bug: exit 4 with a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_INVALID_INPUT = 2
EXIT_RUNTIME = 3
EXIT_UNEXPECTED = 4
EXIT_JOB_FAILED = 5
EXIT_JOB_STOPPED = 6
EXIT_INTERRUPTED = 130


class DummyTrainingError(Exception):
    """Base of every expected error; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_RUNTIME


class InputNotFoundError(DummyTrainingError):
    """A required input (model, hyperparameters, S3 object or bucket) does not exist."""

    exit_code = EXIT_NOT_FOUND


class InvalidInputError(DummyTrainingError):
    """The input exists but is not acceptable: corrupt or hostile archive, bad JSON, bad argument."""

    exit_code = EXIT_INVALID_INPUT


class RuntimeIOError(DummyTrainingError):
    """The environment failed us: disk full, permission denied, network, credentials, access denied."""

    exit_code = EXIT_RUNTIME


class MissingExtraError(DummyTrainingError):
    """What a sub-command needs is not installed: an optional package of one of the distribution's extras."""

    exit_code = EXIT_RUNTIME

    def __init__(self, what: str, module: str) -> None:
        from dummy_training import contract

        extra = contract.extra_for_module(module) or module
        self.module, self.extra = module, extra
        super().__init__(f"{what} needs {module}, which is not installed: {contract.install_extra_hint(extra)}")


class JobFailedError(DummyTrainingError):
    """A remote job (SageMaker or ACK) ended Failed or was rejected."""

    exit_code = EXIT_JOB_FAILED


class JobStoppedError(DummyTrainingError):
    """A remote job ended Stopped (by us on cancellation, by a timeout, or by someone else)."""

    exit_code = EXIT_JOB_STOPPED


class Interrupted(BaseException):
    """SIGTERM/SIGINT arrived; cleanup has been done.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no library's ``except Exception`` swallows it:
    botocore wraps any exception raised during an HTTP request into a retryable ``HTTPClientError``, so a
    SIGTERM landing inside an S3 or SageMaker call was retried away and the run went on (exit 0). Catch it
    together with ``DummyTrainingError`` (``USER_ERRORS``) where errors are reported."""

    exit_code = EXIT_INTERRUPTED


#: What the entry points report as one line with its ``exit_code``.
USER_ERRORS = (DummyTrainingError, Interrupted)
