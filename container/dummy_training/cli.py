"""`dummy-training` console script: sub-commands, logging, signals and exit codes.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds sets
``func(args) -> int`` and, when it needs an optional package, ``needs`` (module names of
``contract.EXTRA_MODULES``): without it the command ends with one line naming the extra to install (exit 3) before
it does anything. Expected errors (``DummyTrainingError``) print one line and exit with their code; anything else
is a bug and exits 4 with a traceback. ``-v``/``-q`` are accepted before or after the sub-command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Sequence

from dummy_training import __version__, contract
from dummy_training.console import install_signal_handlers, print_error, setup_logging
from dummy_training.errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, USER_ERRORS, MissingExtraError

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
    _add_log_flags(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    for child in _sub_parsers(parser):
        _add_log_flags(child, argparse.SUPPRESS)
    return parser


def _add_log_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v``/``-q``; on a sub-command's parser with ``default=SUPPRESS``, so a flag given before the
    sub-command is not reset by the sub-parser's default."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="warnings and errors only")


def _sub_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every sub-command's parser under ``parser``, at any depth (``ack manifest`` ...)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                found += [child, *_sub_parsers(child)]
    return found


def _missing_module(needs: Sequence[str]) -> str | None:
    for module in needs:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            return module
    return None


def _run(args: argparse.Namespace) -> int:
    what = " ".join(filter(None, (contract.CONSOLE_SCRIPT, args.command, getattr(args, "ack_command", None))))
    missing = _missing_module(getattr(args, "needs", ()))
    if missing:
        raise MissingExtraError(what, missing)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:  # a module of an extra imported deeper than `needs` says
        if not exc.name or contract.extra_for_module(exc.name) is None:
            raise
        raise MissingExtraError(what, exc.name.split(".")[0]) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    install_signal_handlers()
    try:
        return _run(args)
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
