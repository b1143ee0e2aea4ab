"""`dummy-training` console script: sub-commands, logging, signals and exit codes.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds sets
``func(args) -> int``. Expected errors (``DummyTrainingError``) print one line and exit with their code;
anything else is a bug and exits 4 with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from dummy_training import __version__
from dummy_training.console import install_signal_handlers, print_error, setup_logging
from dummy_training.errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, USER_ERRORS

log = logging.getLogger("dummy_training")

#: sub-command -> module with add_parser(subparsers); imported lazily only when the command is parsed.
COMMANDS: dict[str, str] = {
    "repack": "dummy_training.step.cli",
    "compile": "dummy_training.kfp.compile",
    "demo": "dummy_training.kfp.demo",
    "sagemaker": "dummy_training.sagemaker.cli",
    "ack": "dummy_training.ack.cli",
}


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
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except Exception:  # a bug: show everything
        traceback.print_exc()
        print("dummy-training: unexpected error (exit 4); please report it with the traceback above",
              file=sys.stderr)
        return EXIT_UNEXPECTED
