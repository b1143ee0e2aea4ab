"""Fixtures of the corpus tier (issue 19): each case's archive written once per session by its real writer, and
repacked once per scanner by the real CLI (``python -m dummy_training repack``).

The two scanners: ``DUMMY_TRAINING_SCAN_THREADS=1`` (the single-thread zlib scanner) and ``=2`` (forces the
parallel rapidgzip scanner whatever the CPU count; see ``engine.archive._parallel_worthwhile``; a multi-member
gzip still falls back to the single-thread scanner, by design).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from corpus.writers import HP_GIVEN, Case


@dataclass
class Repacked:
    threads: int
    rc: int
    stderr: str
    output: bytes | None  # the published model.tar.gz, None when there is none
    leftovers: list[str]  # any other file in the output directory (a temp file left behind)
    result: dict | None

    @property
    def path(self) -> Path:
        return self.out_dir / "model.tar.gz"

    out_dir: Path = Path()


def repack(model: Path, workdir: Path, threads: int, hyperparameters: str | None = HP_GIVEN) -> Repacked:
    out = workdir / f"out-{threads}"
    out.mkdir()
    result = workdir / f"result-{threads}.json"
    argv = [sys.executable, "-m", "dummy_training", "repack", "--model", str(model), "--output-dir", str(out),
            "--result-json", str(result)]
    if hyperparameters is not None:
        argv += ["--hyperparameters-json", hyperparameters]
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env["DUMMY_TRAINING_SCAN_THREADS"] = str(threads)
    proc = subprocess.run(argv, capture_output=True, env=env, timeout=240, check=False)
    published = out / "model.tar.gz"
    files = sorted(p.name for p in out.iterdir())
    return Repacked(threads, proc.returncode, proc.stderr.decode(errors="replace"),
                    published.read_bytes() if published.exists() else None,
                    [f for f in files if f != "model.tar.gz"],
                    json.loads(result.read_text()) if result.exists() else None, out)


class Corpus:
    """Builds and repacks each case once per session."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._archives: dict[str, Path] = {}
        self._repacks: dict[str, tuple[Repacked, Repacked]] = {}

    def archive(self, case: Case) -> Path:
        if case.id not in self._archives:
            work = self.base / case.id
            work.mkdir()
            self._archives[case.id] = case.build(work)
        return self._archives[case.id]

    def repacks(self, case: Case) -> tuple[Repacked, Repacked]:
        """(single-thread scanner, parallel scanner)."""
        if case.id not in self._repacks:
            model = self.archive(case)
            self._repacks[case.id] = (repack(model, model.parent, 1), repack(model, model.parent, 2))
            OUTCOMES[case.id] = (case.writer, *_outcome(*self._repacks[case.id]))
        return self._repacks[case.id]


#: case id -> (writer, "accepted" | "refused" | "other", why): what each case's repack did, for the summary
OUTCOMES: dict[str, tuple[str, str, str]] = {}


def _outcome(one: Repacked, two: Repacked) -> tuple[str, str]:
    """("accepted", decision) or ("refused", the error line); "scanners disagree" when the two differ."""
    def of(r: Repacked) -> tuple[str, str]:
        if r.rc == 0 and r.result:
            return "accepted", r.result["decision"]
        errors = [line for line in r.stderr.splitlines() if line.startswith("dummy-training: error: ")]
        why = errors[0].removeprefix("dummy-training: error: ") if errors else r.stderr.strip()[-200:]
        return ("refused" if r.rc == 2 else f"exit {r.rc}"), why
    a, b = of(one), of(two)
    return a if a == b else ("other", f"scanners disagree: one thread {a}, two threads {b}")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001, ARG001
    """Per writer: archives accepted (injected / preserved), refused, and why (issue 25: a false refusal shows
    as a count, not only as a failed test)."""
    if not OUTCOMES:
        return
    tr = terminalreporter
    tr.section("corpus: accepted / refused per writer")
    writers: dict[str, list[tuple[str, str, str]]] = {}
    for case_id, (writer, what, why) in sorted(OUTCOMES.items()):
        writers.setdefault(writer, []).append((case_id, what, why))
    tr.write_line(f"{'writer':<14} {'accepted':>8} {'refused':>8} {'other':>6}   injected/preserved")
    for writer, rows in sorted(writers.items()):
        accepted = [r for r in rows if r[1] == "accepted"]
        refused = [r for r in rows if r[1] == "refused"]
        other = [r for r in rows if r[1] not in ("accepted", "refused")]
        inj = sum(1 for r in accepted if r[2] == "injected")
        tr.write_line(f"{writer:<14} {len(accepted):>8} {len(refused):>8} {len(other):>6}   "
                      f"{inj}/{len(accepted) - inj}")
    for case_id, (writer, what, why) in sorted(OUTCOMES.items()):
        if what != "accepted":
            tr.write_line(f"  {what}: {case_id} ({writer}): {why[:300]}")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("corpus"))
