"""How every entry point talks to a person: logging to stderr, SIGTERM/SIGINT as ``Interrupted``, and the
one-line error with the CLI's exit code. Shared by the CLI, the KFP component runtime and the launchers."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from typing import NoReturn

from dummy_training.errors import Interrupted

ERROR_PREFIX = "dummy-training: error:"


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT raise ``Interrupted`` in the main thread so every command's cleanup runs."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)


def is_control(code: int) -> bool:
    """C0 (0x00-0x1F) and DEL plus C1 (0x7F-0x9F): characters a terminal or a page may act on
    (``\\x1b`` and ``\\x9b`` start an escape sequence), never shown as themselves."""
    return code < 0x20 or 0x7F <= code < 0xA0


def escape_controls(text: object, keep: str = "") -> str:
    """``text`` with every C0/C1 control character (but those in ``keep``) written as ``\\xNN``."""
    raw = str(text)
    if not any(is_control(ord(ch)) and ch not in keep for ch in raw):
        return raw
    return "".join(f"\\x{ord(ch):02x}" if is_control(ord(ch)) and ch not in keep else ch for ch in raw)


class ControlEscapingFormatter(logging.Formatter):
    """A log line shows control characters as ``\\xNN`` (C0 and C1 alike), so a member name or a remote job's
    log line cannot drive the terminal or the KFP log viewer; newlines and tabs of multi-line messages stay."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message, keep="\n\t")
        return super().formatMessage(record)


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ControlEscapingFormatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("dummy_training")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def print_error(exc: BaseException | str) -> None:
    """The one line a user error prints on stderr."""
    print(f"{ERROR_PREFIX} {exc}", file=sys.stderr, flush=True)


#: When set (by ``dummy-training demo``), a failing KFP task also appends its exit code to this file: kfp.local
#: reports a failed task as FAILURE only, and the demo exits with the task's own code.
EXIT_CODE_FILE_ENV = "DUMMY_TRAINING_EXIT_CODE_FILE"


def record_exit_code(code: int) -> None:
    """Append ``code`` to the file ``EXIT_CODE_FILE_ENV`` names, when it is set (a KFP task about to fail)."""
    record = os.environ.get(EXIT_CODE_FILE_ENV)
    if record:
        with contextlib.suppress(OSError), open(record, "a") as fh:
            fh.write(f"{code}\n")


def fail(exc: BaseException | str, code: int) -> NoReturn:
    """End a KFP task the way the CLI ends: one line on stderr, the CLI's exit code."""
    print_error(exc)
    record_exit_code(code)
    raise SystemExit(code) from None
