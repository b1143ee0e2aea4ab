"""Member names at the tar header's field boundaries (issue 25), with the three readers as the oracle.

Issue 25's regression: a long name whose 100th byte is a '/' was taken for an old-style directory, because the
check read the truncated 100-byte name field. Names here have every length up to 300 and a '/' at every position
near the field boundaries (99-101: the name field; 154-156: ustar's prefix; 255-257: prefix + '/' + name), in
every format GNU tar, bsdtar and tarfile write:

- ``test_every_boundary_name_in_every_format``: one tree holding all of them (about 1,400 names: each length
  1-255 once, and for each boundary position p every length p..300 with the p-th byte a '/'); each writer writes
  it once; the engine lists exactly what tarfile, libarchive and GNU tar list, and injects (no false refusal);
  the output lists the input's members plus ours for tarfile and GNU tar.
- ``test_hypothesis_names``: hypothesis draws names (length up to 300, '/' at the boundaries and anywhere, ``./``
  prefixes, directories) and a writer, with the same oracle.

ustar and v7 cannot hold every name: their writers leave out what does not fit (and say so); the oracle then
judges the archive they wrote.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from corpus.oracle import (
    diff,
    engine_rows,
    libarchive_as_engine,
    libarchive_rows,
    norm,
    tarfile_rows,
)
from corpus.writers import MTIME
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dummy_training.ends.local_file import LocalFileSink, LocalFileSource
from dummy_training.engine.archive import repack_archive

pytestmark = pytest.mark.corpus

BOUNDARIES = (99, 100, 101, 154, 155, 156, 255, 256, 257)
MAX_LEN = 300
HP = b'{"boundary": true}'


def _fit(text: str, length: int) -> str:
    return (text + "x" * length)[:length]


def boundary_names() -> list[str]:
    """Each length 1..255 once (no '/'), then for each boundary p and each length p..300 a name whose p-th byte
    (1-based) is '/' (p == length: a directory entry ending there). Components stay under 256 bytes."""
    names = [_fit(f"q{n}-", n) for n in range(1, 256)]
    for p in BOUNDARIES:
        for length in range(p, MAX_LEN + 1):
            head = _fit(f"p{p}l{length}-", p - 1)
            if len(head) > 200:  # a component longer than NAME_MAX: one more '/', away from the boundaries
                head = head[:140] + "/" + head[141:]
            names.append(head + "/" + _fit("f", length - p))
    return names


def make_tree(root: Path, names: list[str]) -> list[str]:
    """The files (and, for names ending in '/', directories) under ``root``; returns the top-level names."""
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(name.encode()[-7:])
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME))
    return sorted(os.listdir(root))


def _run(argv: list[str], cwd: Path | None = None, *, partial: bool) -> None:
    """A writer; ``partial``: formats that cannot hold every name (exit 1 or 2 with a warning per name left out)."""
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    if proc.returncode != 0 and not (partial and proc.returncode in (1, 2)):
        raise AssertionError(f"{' '.join(argv[:4])} exited {proc.returncode}: {proc.stderr.decode()[-800:]}")


def _gnu(fmt: str) -> Callable[[Path, Path, list[str]], None]:
    return lambda root, out, top: _run(["tar", f"--format={fmt}", "-cf", str(out), "-C", str(root), *top],
                                       partial=fmt in ("ustar", "v7"))


def _bsd(fmt: str) -> Callable[[Path, Path, list[str]], None]:
    return lambda root, out, top: _run(["bsdtar", "--format", fmt, "-cf", str(out), "-C", str(root), *top],
                                       partial=fmt in ("ustar", "v7"))


def _py(fmt: int) -> Callable[[Path, Path, list[str]], None]:
    def write(root: Path, out: Path, top: list[str]) -> None:
        with tarfile.open(out, "w", format=fmt) as tf:
            for name in top:
                try:
                    tf.add(root / name, arcname=name)
                except ValueError:  # ustar: "name is too long"
                    continue
    return write


WRITERS: dict[str, Callable[[Path, Path, list[str]], None]] = {
    **{f"gnu-tar-{f}": _gnu(f) for f in ("gnu", "oldgnu", "posix", "ustar", "v7")},
    **{f"bsdtar-{f}": _bsd(f) for f in ("pax", "gnutar", "ustar", "v7")},
    "tarfile-gnu": _py(tarfile.GNU_FORMAT), "tarfile-pax": _py(tarfile.PAX_FORMAT),
    "tarfile-ustar": _py(tarfile.USTAR_FORMAT),
}


def _gnu_tar_names(path: Path) -> list[bytes]:
    out = subprocess.run(["tar", "--quoting-style=literal", "-tf", str(path)], capture_output=True, check=True,
                         env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout
    return [norm(line) for line in out.split(b"\n") if line]


def judge(archive: Path, work: Path) -> int:
    """The oracle: the engine lists what tarfile, libarchive and GNU tar list, and injects; the output lists the
    input's members plus the root hyperparameters.json for tarfile and GNU tar. Returns the member count."""
    tar = archive.read_bytes()
    engine = engine_rows(tar)
    problems = [diff("engine", engine, "tarfile", tarfile_rows(tar))]
    mine, theirs = libarchive_as_engine(tar, engine, libarchive_rows(archive))
    problems.append(diff("engine", mine, "libarchive", theirs))
    gnu = _gnu_tar_names(archive)
    if [r.name for r in engine] != gnu:
        problems.append(f"engine names != GNU tar's: {sorted(set(r.name for r in engine) ^ set(gnu))[:5]}")
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)
    model = work / "model.tar.gz"
    model.write_bytes(gzip.compress(tar, compresslevel=1, mtime=0))
    out = work / "out" / "model.tar.gz"
    source, sink = LocalFileSource(model), LocalFileSink(out)
    try:
        result = repack_archive(source, sink, HP, mtime=MTIME)  # a false refusal raises here
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()
    assert result.decision == "injected"
    out_tar = gzip.decompress(out.read_bytes())
    after = [r.name for r in tarfile_rows(out_tar)]
    assert after[:-1] == [r.name for r in engine] and after[-1] == b"hyperparameters.json"
    assert _gnu_tar_names(out)[:-1] == gnu
    return len(engine)


@pytest.fixture(scope="module")
def boundary_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("boundaries") / "tree"
    names = boundary_names()
    return root, make_tree(root, names)


def test_the_names_sit_on_the_boundaries() -> None:
    names = boundary_names()
    assert len(names) == 255 + sum(MAX_LEN - p + 1 for p in BOUNDARIES)
    for p in BOUNDARIES:
        at = [n for n in names if n.startswith(f"p{p}l")]
        assert {len(n) for n in at} == set(range(p, MAX_LEN + 1)) and all(n[p - 1] == "/" for n in at)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_boundary_name_in_every_format(writer: str, boundary_tree: tuple[Path, list[str]],
                                             tmp_path: Path) -> None:
    root, top = boundary_tree
    archive = tmp_path / "in.tar"
    WRITERS[writer](root, archive, top)
    count = judge(archive, tmp_path)
    full = not writer.endswith(("ustar", "v7"))
    assert count >= (len(boundary_names()) if full else 255), f"{writer} wrote {count} members"


_component = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=120).filter(lambda c: c not in (".", ".."))


@st.composite
def _names(draw: st.DrawFn) -> list[str]:
    """A few names of up to 300 bytes, each with a '/' at a drawn boundary (or none), maybe a directory."""
    out: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        length = draw(st.integers(1, MAX_LEN))
        slashes = draw(st.sets(st.sampled_from(BOUNDARIES) | st.integers(2, MAX_LEN - 1), max_size=3))
        chars = list(_fit(f"h{i}{draw(_component)}", length))
        for p in sorted(slashes):
            if p < length:
                chars[p - 1] = "/"
        parts = [c for c in "".join(chars).split("/") if c]
        parts = [c if c not in (".", "..") else "d" + c for c in parts]
        parts = [c[j : j + 200] for c in parts for j in range(0, len(c), 200)]
        if not parts:
            continue
        name = "/".join(parts)
        out.append(name + ("/" if draw(st.booleans()) and length > 1 else ""))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(names=_names(), writer=st.sampled_from(sorted(WRITERS)))
def test_hypothesis_names(names: list[str], writer: str, tmp_path: Path) -> None:
    work = tmp_path / "h"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    root = work / "tree"
    root.mkdir()
    # a name that is a path prefix of another (or the same path spelled as a directory) would clash on disk
    kept: list[str] = []
    for n in names:
        parts = n.rstrip("/").split("/")
        clash = False
        for k in kept:
            other = k.rstrip("/").split("/")
            shorter = min(len(parts), len(other))
            clash = clash or parts[:shorter] == other[:shorter]
        if not clash:
            kept.append(n)
    top = make_tree(root, kept)
    archive = work / "in.tar"
    WRITERS[writer](root, archive, top)
    judge(archive, work)
