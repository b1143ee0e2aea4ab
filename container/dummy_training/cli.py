"""`dummy-training` console script: sub-commands, logging, signals and exit codes.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds sets
``func(args) -> int``. Expected errors (``DummyTrainingError``) print one line and exit with their code;
anything else is a bug and exits 4 with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import traceback
from collections.abc import Sequence

from dummy_training import __version__
from dummy_training.errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, USER_ERRORS, Interrupted

log = logging.getLogger("dummy_training")

#: sub-command -> module with add_parser(subparsers); imported lazily only when the command is parsed.
COMMANDS: dict[str, str] = {
    "repack": "dummy_training.repack_cli",
    "compile": "dummy_training.compile",
    "demo": "dummy_training.demo",
    "sagemaker": "dummy_training.sagemaker_cli",
    "ack": "dummy_training.ack_cli",
}


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT raise ``Interrupted`` in the main thread so every command's cleanup runs."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("dummy_training")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dummy-training",
        description="Dummy training step: repack a pretrained model.tar.gz so it carries hyperparameters.json.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    install_signal_handlers()
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"dummy-training: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dummy-training: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug: show everything
        traceback.print_exc()
        print("dummy-training: unexpected error (exit 4); please report it with the traceback above",
              file=sys.stderr)
        return EXIT_UNEXPECTED
