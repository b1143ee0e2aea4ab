"""A GNU incremental archive (``tar --listed-incremental``) after an inject (issue 25), as docs/tar.md states it.

Its root directory is a dumpdir (``D``) listing the names the directory held when it was dumped; ``tar -x -G``
deletes from the target what a dumpdir does not list, when it reaches that member. The engine keeps the input's
bytes (the dumpdir lies in the kept prefix: rewriting it would mean re-deflating the model, and it belongs to the
backup's snapshot) and appends ``./hyperparameters.json`` after it, so:

- ``tar -x -G`` extracts the input's tree plus hyperparameters.json (the purge runs at the root dumpdir, before
  the new member is extracted);
- ``tar --compare`` reports exactly ``.: Contents differ`` (exit 1) for the root directory, whose dumpdir does not
  list the new file, and nothing else;
- a later level of the same chain extracted with ``-G`` on top deletes hyperparameters.json (its root dumpdir does
  not list it either), as it would any file added outside the chain.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.corpus

HP = '{"a": 1}'


def _tar(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["tar", *map(str, args)], capture_output=True, text=True, check=check,
                          env={**os.environ, "LC_ALL": "C.UTF-8"})


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Path]:
    """Level 0 of a chain, its repack (injected) and level 1 (a file changed, one removed)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.bin").write_bytes(os.urandom(5000))
    (src / "sub" / "config.json").write_text("{}\n")
    (src / "old.txt").write_text("gone at level 1\n")
    snar = tmp_path / "chain.snar"
    level0 = tmp_path / "level0.tar.gz"
    _tar("--format=gnu", f"--listed-incremental={snar}", "-czf", level0, "-C", src, ".")
    (src / "old.txt").unlink()
    (src / "sub" / "config.json").write_text('{"changed": true}\n')
    level1 = tmp_path / "level1.tar.gz"
    _tar("--format=gnu", f"--listed-incremental={snar}", "-czf", level1, "-C", src, ".")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "dummy_training", "repack", "--model", str(level0),
                          "--hyperparameters-json", HP, "--output-dir", str(out)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return {"level0": level0, "level1": level1, "out": out / "model.tar.gz"}


def test_the_injected_member_follows_the_root_dumpdir(chain: dict[str, Path]) -> None:
    names = _tar("-tzf", chain["out"]).stdout.splitlines()
    assert names[0] == "./" and names[-1] == "./hyperparameters.json"
    assert names[:-1] == _tar("-tzf", chain["level0"]).stdout.splitlines()


def test_tar_x_g_extracts_the_input_tree_plus_hyperparameters(chain: dict[str, Path], tmp_path: Path) -> None:
    plain, injected = tmp_path / "plain", tmp_path / "injected"
    plain.mkdir()
    injected.mkdir()
    (injected / "stale.txt").write_text("not in the archive\n")  # purged by the root dumpdir, as for the input
    _tar("-x", "-G", "-zf", chain["level0"], "-C", plain)
    res = _tar("-x", "-G", "-v", "-zf", chain["out"], "-C", injected)
    assert "Deleting" in res.stdout and "stale.txt" in res.stdout  # tar -v lists to stdout, deletions too
    assert _tree(injected) == {**_tree(plain), "hyperparameters.json": HP.encode()}


def test_tar_compare_reports_the_root_directory_only(chain: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "x"
    dest.mkdir()
    _tar("-x", "-G", "-zf", chain["out"], "-C", dest)
    for extra in ((), ("-G",)):
        res = _tar("--compare", *extra, "-zf", chain["out"], "-C", dest, check=False)
        assert (res.returncode, (res.stdout + res.stderr).splitlines()) == (1, [".: Contents differ"]), extra
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    _tar("-x", "-G", "-zf", chain["level0"], "-C", baseline)
    assert _tar("--compare", "-zf", chain["level0"], "-C", baseline, check=False).returncode == 0


def test_the_next_level_removes_it_as_any_file_outside_the_chain(chain: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "restore"
    dest.mkdir()
    _tar("-x", "-G", "-zf", chain["out"], "-C", dest)
    assert (dest / "hyperparameters.json").read_text() == HP
    res = _tar("-x", "-G", "-v", "-zf", chain["level1"], "-C", dest)
    assert not (dest / "hyperparameters.json").exists() and "Deleting ‘./hyperparameters.json’" in res.stdout
    assert not (dest / "old.txt").exists()
    assert (dest / "sub" / "config.json").read_text() == '{"changed": true}\n'
