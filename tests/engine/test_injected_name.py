"""The injected member follows the archive's own ``./`` convention, and a missing root hyperparameters.json names
the nested one the engine saw (issue 28 item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import repack_bytes

from dummy_training import contract
from dummy_training.engine.archive import injected_name
from dummy_training.engine.tar_scan import TarScanner
from dummy_training.errors import EXIT_NOT_FOUND, InputNotFoundError

HP = b'{"epochs": 3}'


def _tree(root: Path, *, nested_hp: bool = False) -> Path:
    (root / "model" / "sub").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(os.urandom(5000))
    (root / "model" / "sub" / "config.txt").write_text("x\n")
    if nested_hp:
        (root / "model" / "hyperparameters.json").write_bytes(b'{"nested": 1}')
        (root / "model" / "sub" / "hyperparameters.json").write_bytes(b'{"deeper": 1}')
    return root


def _gnu_tar(tmp_path: Path, *members: str, nested_hp: bool = False) -> bytes:
    src = _tree(tmp_path / "src", nested_hp=nested_hp)
    out = tmp_path / "m.tgz"
    subprocess.run(["tar", "czf", str(out), "-C", str(src), *members], check=True)
    return out.read_bytes()


def _names(path: Path) -> list[str]:
    """The names as GNU tar lists them (tarfile drops a directory's trailing '/')."""
    return subprocess.run(["tar", "tzf", str(path)], check=True, capture_output=True, text=True).stdout.split("\n")[:-1]


def test_dot_slash_archive_gets_dot_slash_member_that_tar_extracts_by_name(tmp_path: Path) -> None:
    data = _gnu_tar(tmp_path, ".")
    result, out = repack_bytes(data, tmp_path / "a", HP)
    names = _names(out)
    assert names[0] == "./" and all(n.startswith("./") for n in names)
    assert names[-1] == "./hyperparameters.json"
    assert result.decision == "injected"
    dest = tmp_path / "x"
    dest.mkdir()
    # what the user typed: the member is found by the name its siblings share
    subprocess.run(["tar", "xzf", str(out), "-C", str(dest), "./hyperparameters.json"], check=True)
    assert (dest / "hyperparameters.json").read_bytes() == HP
    # and the same run twice gives the same bytes
    _, again = repack_bytes(data, tmp_path / "b", HP)
    assert again.read_bytes() == out.read_bytes()


def test_plain_names_get_a_plain_member(tmp_path: Path) -> None:
    data = _gnu_tar(tmp_path, "model")
    _, out = repack_bytes(data, tmp_path / "a", HP)
    names = _names(out)
    assert names[0] == "model/"
    assert names[-1] == "hyperparameters.json"
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "xzf", str(out), "-C", str(dest), "hyperparameters.json"], check=True)
    assert (dest / "hyperparameters.json").read_bytes() == HP


def test_the_first_member_decides() -> None:
    scanner = TarScanner()
    assert injected_name(scanner) == "hyperparameters.json"
    scanner.dot_slash = True  # a first member such as "./model/"
    assert injected_name(scanner) == "./hyperparameters.json"


@pytest.mark.parametrize("generic", [False, True])
def test_missing_error_names_the_shallowest_nested_one(tmp_path: Path, generic: bool) -> None:
    data = _gnu_tar(tmp_path, ".", nested_hp=True)
    with pytest.raises(InputNotFoundError) as info:
        repack_bytes(data, tmp_path / "a", None, generic=generic)
    assert str(info.value).endswith("(found model/hyperparameters.json, not at the root)")


def test_missing_error_without_a_nested_one_says_nothing_more(tmp_path: Path) -> None:
    data = _gnu_tar(tmp_path, ".")
    with pytest.raises(InputNotFoundError) as info:
        repack_bytes(data, tmp_path / "a", None)
    assert "found" not in str(info.value)


def test_cli_missing_error_is_one_line_exit_1_naming_the_nested_file(tmp_path: Path) -> None:
    data = _gnu_tar(tmp_path, ".", nested_hp=True)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(data)
    res = subprocess.run([sys.executable, "-m", "dummy_training", "repack", "--model", str(model),
                          "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, contract.OPT_ML_ROOT_ENV: str(tmp_path / "opt_ml")})
    assert res.returncode == EXIT_NOT_FOUND, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("dummy-training: error:")]
    assert len(errors) == 1
    assert "(found model/hyperparameters.json, not at the root)" in errors[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "model.tar.gz").exists()
