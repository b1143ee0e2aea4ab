"""Global PAX headers (issue 25): informational keywords are accepted, those that change what an extractor writes
are refused; each rule in ``tar_scan`` (``global_keyword_refused``) is kept true by the three readers here.

An archive is a global header carrying one keyword, then two ustar members (one in a directory). GNU tar, bsdtar
and tarfile each extract it into a directory of their own; the trees (names, modes, sizes, contents) are compared.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from archives import build_tar, directory, file
from engine_helpers import repack_bytes

from dummy_training.engine.tar_scan import TarScanner, global_keyword_refused
from dummy_training.errors import InvalidInputError

HP = b'{"epochs": 3}'

#: Informational: the three readers extract the same tree (star, GNU tar -V, git archive and POSIX write these).
ACCEPTED = {
    "comment": "git archive writes its commit id here",
    "charset": "ISO-IR 10646 2000 UTF-8",
    "hdrcharset": "BINARY",
    "SCHILY.release": "star 1.6 (x86_64-unknown-linux-gnu)",
    "SCHILY.archtype": "exustar",
    "SCHILY.volhdr.blockoff": "0",
    "SCHILY.volhdr.volno": "1",
    "GNU.volume.label": "backup-1",
}

#: Refused, each with a reading that the three readers do not share (checked below where one extraction shows it).
REFUSED = ["path", "linkpath", "size", "GNU.sparse.size", "GNU.sparse.major", "GNU.dumpdir", "GNU.volume.size",
           "GNU.volume.filename", "GNU.volume.offset", "SCHILY.xattr.user.x", "SCHILY.acl.access",
           "SCHILY.filetype", "SCHILY.dev", "LIBARCHIVE.xattr.user.x", "security.selinux",
           "RHT.security.selinux"]


def _global(records: dict[str, str]) -> bytes:
    return tarfile.TarInfo()._create_pax_generic_header(records, tarfile.XGLTYPE, "utf-8")  # type: ignore[attr-defined]


def _archive(key: str, value: str) -> bytes:
    body = build_tar([directory("d"), file("a.txt", b"hello\n"), file("d/b.bin", bytes(range(256)) * 3)],
                     tarfile.USTAR_FORMAT)
    return _global({key: value}) + body


def _tree(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        data = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else ""
        out[str(path.relative_to(root))] = (oct(st.st_mode), st.st_size if path.is_file() else 0, data)
    return out


def _extract(reader: str, archive: Path, dest: Path, *extra: str) -> tuple[int, dict[str, tuple]]:
    dest.mkdir(parents=True)
    if reader == "tarfile":
        try:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="fully_trusted")
            code = 0
        except (tarfile.TarError, OSError):
            code = 1
    else:
        tool = ["tar"] if reader == "gnu-tar" else ["bsdtar"]
        code = subprocess.run([*tool, *extra, "-xf", str(archive), "-C", str(dest)], capture_output=True).returncode
    return code, _tree(dest)


def _three(tar: bytes, work: Path) -> dict[str, tuple[int, dict[str, tuple]]]:
    work.mkdir(parents=True)
    archive = work / "in.tar"
    archive.write_bytes(tar)
    return {reader: _extract(reader, archive, work / reader) for reader in ("gnu-tar", "bsdtar", "tarfile")}


@pytest.mark.parametrize("key", sorted(ACCEPTED))
def test_an_informational_global_keyword_is_read_alike_and_accepted(key: str, tmp_path: Path) -> None:
    tar = _archive(key, ACCEPTED[key])
    seen = _three(tar, tmp_path / "readers")
    assert seen["gnu-tar"] == seen["bsdtar"] == seen["tarfile"], seen
    assert not global_keyword_refused(key)
    result, out = repack_bytes(gzip.compress(tar, mtime=0), tmp_path / "repack", HP)
    assert result.decision == "injected"
    after = _three(gzip.decompress(out.read_bytes()), tmp_path / "after")
    for reader, (code, tree) in after.items():
        assert code == 0 and tree["hyperparameters.json"][1] == len(HP), reader
        assert {k: v for k, v in tree.items() if k != "hyperparameters.json"} == seen[reader][1], reader


@pytest.mark.parametrize("key", REFUSED)
def test_a_global_keyword_that_changes_what_is_written_is_refused(key: str) -> None:
    assert global_keyword_refused(key)
    scanner = TarScanner()
    with pytest.raises(InvalidInputError, match=f"global PAX header .* sets {key!r} for every later member"):
        scanner.feed(_archive(key, "1" if key != "GNU.dumpdir" else "Ya.txt\0\0"))


@pytest.mark.parametrize("key,value", [("path", "evil"), ("size", "3"), ("GNU.sparse.size", "5")])
def test_the_readers_really_disagree_on_a_global_name_or_size(key: str, value: str, tmp_path: Path) -> None:
    """GNU tar and tarfile apply it to every later member (their trees differ from the plain one), bsdtar ignores
    it (its tree is the plain one)."""
    seen = _three(_archive(key, value), tmp_path / "global")
    plain = _three(build_tar([directory("d"), file("a.txt", b"hello\n"), file("d/b.bin", bytes(range(256)) * 3)],
                             tarfile.USTAR_FORMAT), tmp_path / "plain")
    assert seen["bsdtar"][1] == plain["bsdtar"][1]
    assert seen["gnu-tar"][1] != plain["gnu-tar"][1] and seen["tarfile"][1] != plain["tarfile"][1]


def test_tar_g_takes_a_global_dumpdir_for_every_directory(tmp_path: Path) -> None:
    """``tar -x -G`` deletes from each later directory what a global GNU.dumpdir does not list; bsdtar does not."""
    archive = tmp_path / "in.tar"
    archive.write_bytes(_archive("GNU.dumpdir", "Yb.bin\0\0"))
    for tool in (["tar", "-G"], ["bsdtar"]):
        dest = tmp_path / tool[0]
        (dest / "d").mkdir(parents=True)
        (dest / "d" / "kept.txt").write_text("mine\n")
        subprocess.run([*tool, "-xf", str(archive), "-C", str(dest)], check=True, capture_output=True)
        assert (dest / "d" / "kept.txt").exists() == (tool[0] == "bsdtar")


def test_gnu_tar_xattrs_tries_to_set_a_global_xattr_on_every_member(tmp_path: Path) -> None:
    """``tar --xattrs`` applies a global ``SCHILY.xattr.*`` to each member (here it fails, or sets it, per the
    file system), where bsdtar and tarfile ignore it: its stderr names each member."""
    archive = tmp_path / "in.tar"
    archive.write_bytes(_archive("SCHILY.xattr.user.dt_test", "v"))
    dest = tmp_path / "x"
    dest.mkdir()
    res = subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "-xf", str(archive), "-C", str(dest)],
                         capture_output=True, text=True)
    got = subprocess.run(["getfattr", "-d", "-m", "user.", str(dest / "a.txt")], capture_output=True,
                         text=True).stdout if os.path.exists("/usr/bin/getfattr") else ""
    assert "setxattr" in res.stderr or "dt_test" in got
