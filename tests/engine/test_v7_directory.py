"""A v7 directory with a size (issue 25): the reading GNU tar, bsdtar and tarfile share is accepted, the ones they
do not share stay refused. The three readers are the oracle: each extracts the archive, the trees are compared.

libarchive's ``test_compat_tar_directory_1.tar`` is rebuilt here byte for byte in its shape: a v7 header (no ustar
magic) of type ``\\0`` named ``directory1/`` with a size of 1 and no data block, then ``directory2/``.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest
from engine_helpers import repack_bytes

from dummy_training.engine.tar_scan import TarScanner
from dummy_training.errors import InvalidInputError

HP = b'{"epochs": 3}'
END = bytes(1024)


def header(name: bytes, typ: bytes, size: int, *, ustar: bool = False, mode: int = 0o755) -> bytes:
    b = bytearray(512)
    b[0 : len(name)] = name
    b[100:108] = b"%07o\0" % mode
    b[108:116] = b[116:124] = b"0000000\0"
    b[124:136] = b"%011o\0" % size
    b[136:148] = b"%011o\0" % 1_700_000_000
    b[156:157] = typ
    if ustar:
        b[257:265] = b"ustar\x0000"
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b)


def regular(name: bytes, content: bytes) -> bytes:
    return header(name, b"0", len(content), mode=0o644) + content + bytes(-len(content) % 512)


def gnu_long_name(name: bytes) -> bytes:
    data = name + b"\0"
    return header(b"././@LongLink", b"L", len(data)) + data + bytes(-len(data) % 512)


def compat_tar_directory_1(*, ustar: bool = False) -> bytes:
    return (header(b"directory1/", b"\0", 1, ustar=ustar) + header(b"directory2/", b"\0", 0, ustar=ustar)
            + regular(b"directory2/f.txt", b"hello\n") + END)


def _tree(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out.append(rel + "/" if path.is_dir() else f"{rel}={hashlib.sha256(path.read_bytes()).hexdigest()[:12]}")
    return out


def extractions(tar: bytes, work: Path) -> dict[str, list[str]]:
    """The tree each reader extracts from ``tar`` (plain or gzip'd); a reader that fails is a failed assert."""
    work.mkdir(parents=True)
    archive = work / "in.tar"
    archive.write_bytes(tar)
    out = {}
    for reader in ("gnu-tar", "bsdtar", "tarfile"):
        dest = work / reader
        dest.mkdir()
        if reader == "tarfile":
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="fully_trusted")
        else:
            subprocess.run(["tar" if reader == "gnu-tar" else "bsdtar", "-xf", str(archive), "-C", str(dest)],
                           check=True, capture_output=True)
        out[reader] = _tree(dest)
    return out


@pytest.mark.parametrize("ustar", [False, True], ids=["v7", "ustar-magic"])
def test_libarchives_compat_tar_directory_1_is_read_alike_and_accepted(ustar: bool, tmp_path: Path) -> None:
    tar = compat_tar_directory_1(ustar=ustar)
    seen = extractions(tar, tmp_path / "in")
    assert seen["gnu-tar"] == seen["bsdtar"] == seen["tarfile"] == [
        "directory1/", "directory2/", f"directory2/f.txt={hashlib.sha256(b'hello' + bytes([10])).hexdigest()[:12]}"]
    scanner = TarScanner(max_listed=None)
    scanner.feed(tar)
    assert [(m.name, m.type, m.size) for m in scanner.members] == [
        ("directory1", "dir", 0), ("directory2", "dir", 0), ("directory2/f.txt", "file", 6)]
    for generic in (False, True):
        result, out = repack_bytes(gzip.compress(tar, mtime=0), tmp_path / f"out-{generic}", HP, generic=generic)
        assert result.decision == "injected"
        after = extractions(gzip.decompress(out.read_bytes()), tmp_path / f"after-{generic}")
        hp = f"hyperparameters.json={hashlib.sha256(HP).hexdigest()[:12]}"
        assert after["gnu-tar"] == after["bsdtar"] == after["tarfile"] == sorted([*seen["tarfile"], hp])


def test_with_a_long_name_ending_in_a_slash_in_field_and_record_it_is_read_alike_and_accepted(tmp_path: Path) -> None:
    name = b"d/" + b"a" * 97 + b"/" + b"b" * 20 + b"/"  # the 100-byte field ends in '/', so does the real name
    tar = gnu_long_name(name) + header(name[:100], b"\0", 1) + regular(b"f.txt", b"hello") + END
    seen = extractions(tar, tmp_path / "in")
    assert seen["gnu-tar"] == seen["bsdtar"] == seen["tarfile"]
    result, _ = repack_bytes(gzip.compress(tar, mtime=0), tmp_path / "out", HP)
    assert result.decision == "injected"


@pytest.mark.parametrize("case", ["type-0", "type-0-with-data", "long-name-field-without-slash"])
def test_the_readings_they_do_not_share_stay_refused(case: str, tmp_path: Path) -> None:
    if case == "type-0":  # tarfile: a file whose data is the next header
        tar = header(b"directory1/", b"0", 1) + header(b"directory2/", b"\0", 0) + regular(b"f.txt", b"x") + END
    elif case == "type-0-with-data":  # tarfile: a file with that data; GNU tar, bsdtar: a directory, then headers
        tar = header(b"directory1/", b"0", 1) + b"\0" * 512 + regular(b"f.txt", b"x") + END
    else:  # the real name ends in '/', its field not: GNU tar and bsdtar a directory, tarfile a file with data
        name = b"d/" + b"a" * 120 + b"/"
        tar = gnu_long_name(name) + header(name[:100], b"\0", 1) + regular(b"f.txt", b"hello") + END
    seen = extractions(tar, tmp_path / "in")
    assert not seen["gnu-tar"] == seen["bsdtar"] == seen["tarfile"]
    with pytest.raises(InvalidInputError, match="directory written as a regular file"):
        TarScanner().feed(tar)


@pytest.mark.parametrize("what", ["end", "root-hyperparameters"])
def test_a_sized_v7_directory_whose_skip_gnu_tars_listing_would_hide_ours_is_refused(what: str) -> None:
    """GNU tar's listing (and ``tar x NAME``) skips the size's blocks after it: over the end of the archive the
    injected member would be missing from ``tar t``; over the root hyperparameters.json, that one would."""
    tail = regular(b"hyperparameters.json", HP) if what == "root-hyperparameters" else b""
    tar = regular(b"a.txt", b"a") + header(b"directory1/", b"\0", 512) + tail + END
    scanner = TarScanner()
    with pytest.raises(InvalidInputError, match="makes GNU tar's listing skip"):
        scanner.feed(tar)
        scanner.finish()
