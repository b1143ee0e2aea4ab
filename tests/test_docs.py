"""The docs stay true: every `dummy-training ...` example in them parses with the CLI's own parser (argparse only,
nothing runs), every relative link points at a file of the repository, and the README stays a front door."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from dummy_training import cli

REPO = Path(__file__).resolve().parents[1]
#: What a user reads: the README, docs/, each component's and the pipelines' README, the changelog.
PAGES = sorted([REPO / "README.md", REPO / "CHANGELOG.md", REPO / "pipelines" / "README.md",
                *REPO.glob("docs/**/*.md"), *REPO.glob("components/*/README.md")])
README_MAX_LINES = 250
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_SHELL_FENCE = re.compile(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", re.S | re.M)
_PLACEHOLDER = re.compile(r"<([A-Za-z][\w.-]*)>")  # `<registry>` in a doc is a value to fill in, not a redirect
_INLINE = re.compile(r"`(dummy-training [^`]+)`")
_SEPARATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "(", ")"}


def _commands(text: str) -> Iterator[list[str]]:
    """The argument lists of every ``dummy-training`` command in ``text`` (a shell snippet): continuation lines
    joined, comments dropped, split at pipes and ``&&``, leading ``VAR=value`` assignments skipped."""
    text = _PLACEHOLDER.sub(r"\1", re.sub(r"\\\n\s*", " ", text))
    for line in text.splitlines():
        lexer = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:  # not shell (a Python or YAML block line with an odd quote)
            continue
        command: list[str] = []
        for token in [*tokens, ";"]:
            if token not in _SEPARATORS:
                command.append(token)
                continue
            while command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", command[0]):
                command.pop(0)
            if command and command[0] == "dummy-training":
                yield command[1:]
            command = []


def examples() -> list[tuple[str, str, list[str]]]:
    """(page, "block" or "inline", argv) for every example; blocks are whole commands, inline spans may be
    fragments (`dummy-training sagemaker` named without its required flags)."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in _SHELL_FENCE.findall(text):
            found += [(str(page.relative_to(REPO)), "block", argv) for argv in _commands(block)]
        without_blocks = _FENCE.sub("", text)
        for span in _INLINE.findall(without_blocks):  # "`dummy-training sagemaker ...`": the rest left out
            found += [(str(page.relative_to(REPO)), "inline", [a for a in argv if a not in ("...", "…")])
                      for argv in _commands(span)]
    return found


def _relaxed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` with no argument required, every level down: an inline fragment must name real sub-commands and
    flags and give them valid values, but may leave out what a full command needs."""
    for action in parser._actions:
        action.required = False
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                _relaxed(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """None when ``argv`` parses, else argparse's complaint."""
    errors: list[str] = []

    def error(message: str) -> None:
        errors.append(message)
        raise SystemExit(2)

    def patch(p: argparse.ArgumentParser) -> None:
        p.error = error  # type: ignore[method-assign]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in set(action.choices.values()):
                    patch(sub)

    patch(parser)
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):  # --help and --version exit 0
            return errors[0] if errors else f"exit {exc.code}"
    return None


EXAMPLES = examples()


def test_the_docs_have_examples_of_every_sub_command() -> None:
    named = {argv[0] for _page, _kind, argv in EXAMPLES if argv}
    assert set(cli.COMMANDS) <= named, set(cli.COMMANDS) - named
    assert len([e for e in EXAMPLES if e[1] == "block"]) >= 20


@pytest.mark.parametrize(("page", "kind", "argv"), EXAMPLES,
                         ids=[f"{p}:{' '.join(a)[:60]}" for p, _k, a in EXAMPLES])
def test_every_documented_command_parses(page: str, kind: str, argv: list[str],
                                         capsys: pytest.CaptureFixture) -> None:
    parser = cli.build_parser() if kind == "block" else _relaxed(cli.build_parser())
    problem = _parse(parser, argv)
    capsys.readouterr()  # --help / --version output
    assert problem is None, f"{page}: `dummy-training {shlex.join(argv)}`: {problem}"


def test_the_checker_refuses_what_the_cli_refuses() -> None:
    """The parse above is the real one: an unknown flag, a bad sub-command or a missing required flag fails."""
    assert list(_commands("FOO=1 dummy-training repack --model m.tar.gz | tar tz  # a comment")) == [
        ["repack", "--model", "m.tar.gz"]]
    assert _parse(cli.build_parser(), ["repack", "--no-such-flag"])
    assert _parse(cli.build_parser(), ["repackk"])
    assert _parse(cli.build_parser(), ["sagemaker", "--model", "m.tar.gz"])  # --role-arn ... missing
    assert _parse(_relaxed(cli.build_parser()), ["sagemaker", "--model", "m.tar.gz"]) is None
    assert _parse(_relaxed(cli.build_parser()), ["sagemaker", "--modle", "m.tar.gz"])


# -------------------------------------------------------------------------------------------------- links
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation but ``-`` and ``_`` dropped, spaces
    to ``-``."""
    headings = re.findall(r"^#+ (.+)$", _FENCE.sub("", page.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_a_front_door() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    # the two set-up commands are its first bash block (.ci/newcomer.sh runs them), on the first screen
    first = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and commands[0].endswith("&& dummy-training demo"), commands
    assert commands[1].startswith("pip install -e ") and commands[1].endswith("&& pytest"), commands
    assert text.index("```bash") < 1200
    for page in ("docs/deploy.md", "docs/contributing.md", "CHANGELOG.md", "docs/tar.md"):
        assert f"]({page}" in text, page
