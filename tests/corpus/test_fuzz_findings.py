"""Regression tests from the fuzzer's findings (tests/fuzz/fuzz_tar.py; /work/notes/corpus-findings.md F3).
Python only (default suite): each input is rebuilt with tarfile and patched, and tarfile itself shows the
disagreement first, so no test can pass vacuously."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus.checks import check_refused, check_scanners_agree
from corpus.conftest import repack
from corpus.hostile import _info, fix_checksum, member_offsets, write_tar
from corpus.oracle import ROOT_HP, tarfile_rows
from corpus.writers import python_gzip

from dummy_training.errors import InvalidInputError

#: numeric header fields tarfile parses strictly (``int(field up to NUL, stripped, 8)``; a failure ends its
#: reading of the archive silently, after the first member) and the engine did not: (offset, length)
FIELDS = {"mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "mtime": (136, 12), "devmajor": (329, 8),
          "devminor": (337, 8)}
#: what the fuzzer wrote (mode field "007 0": digits, a space, a digit) and a non-octal digit
BAD = {"space-inside": b"007 0\0", "not-octal": b"9\0"}



def _patched(field: str, bad: bytes) -> bytes:
    """a.txt, b.txt (its ``field`` patched), then a root hyperparameters.json"""
    tar = write_tar([(_info("a.txt"), b"a\n"), (_info("b.txt"), b"b\n"),
                     (_info("hyperparameters.json"), b'{"epochs": 99}')])
    offset = member_offsets(tar)["b.txt"]
    start, length = FIELDS[field]
    out = bytearray(tar)
    out[offset + start : offset + start + length] = bad.ljust(length, b"\0")
    fix_checksum(out, offset)
    return bytes(out)


CASES = [pytest.param(f, b, id=f"{f}-{b}") for f in FIELDS for b in BAD]  # F3 fixed in 2dacef2


@pytest.mark.parametrize(("field", "bad"), CASES)
def test_a_header_tarfile_cannot_parse_is_refused(field: str, bad: str, tmp_path: Path) -> None:
    tar = _patched(field, BAD[bad])
    assert [r.name for r in tarfile_rows(tar)] == [b"a.txt"]  # tarfile stops: no b.txt, no hyperparameters.json
    from corpus.oracle import engine_rows

    with pytest.raises(InvalidInputError):
        engine_rows(tar)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(python_gzip(tar))
    one, two = repack(model, tmp_path, 1), repack(model, tmp_path, 2)
    check_scanners_agree(one, two, model)
    check_refused(one)


def test_the_unpatched_archive_is_read_whole() -> None:
    """The same archive, unpatched: tarfile reads all three members (so the patch is what stops it)."""
    tar = write_tar([(_info("a.txt"), b"a\n"), (_info("b.txt"), b"b\n"),
                     (_info("hyperparameters.json"), b'{"epochs": 99}')])
    assert [r.name for r in tarfile_rows(tar)] == [b"a.txt", b"b.txt", ROOT_HP]


def _v7_with_prefix(name: str, prefix: bytes) -> bytes:
    """a.txt, then ``name`` in a header without magic (v7) holding ``prefix`` at bytes 345..: tarfile joins it to
    the name as a ustar prefix whatever the magic, GNU tar and libarchive do not (the fuzzer's second case)."""
    tar = write_tar([(_info("a.txt"), b"a\n"), (_info(name), b"{}\n")])
    offset = member_offsets(tar)[name]
    out = bytearray(tar)
    out[offset + 257 : offset + 265] = bytes(8)  # no magic, no version
    out[offset + 345 : offset + 345 + len(prefix)] = prefix
    fix_checksum(out, offset)
    return bytes(out)


def test_a_v7_header_prefix_tarfile_alone_reads_is_judged_under_both_names(tmp_path: Path) -> None:
    """Harmless under both readings ('config.json' / 'er/config.json'): repacked, read back alike."""
    from corpus.checks import check_output_listing

    tar = _v7_with_prefix("config.json", b"er")
    assert [r.name for r in tarfile_rows(tar)] == [b"a.txt", b"er/config.json"]
    model = tmp_path / "model.tar.gz"
    model.write_bytes(python_gzip(tar))
    one, two = repack(model, tmp_path, 1), repack(model, tmp_path, 2)
    check_scanners_agree(one, two, model)
    assert one.rc == 0 and one.result is not None and one.result["decision"] == "injected", one.stderr
    check_output_listing(model, one, external=False)


@pytest.mark.parametrize(("name", "prefix", "why"), [
    ("hyperparameters.json", b"sub", "tarfile would not see the root hyperparameters.json"),
    ("config.json", b"..", "tarfile would write ../config.json"),
    ("config.json", b"/etc", "tarfile would write /etc/config.json"),
])
def test_a_v7_header_prefix_that_changes_the_outcome_is_refused(name: str, prefix: bytes, why: str,
                                                               tmp_path: Path) -> None:
    tar = _v7_with_prefix(name, prefix)
    assert tarfile_rows(tar)[-1].name == prefix + b"/" + name.encode(), why
    model = tmp_path / "model.tar.gz"
    model.write_bytes(python_gzip(tar))
    one, two = repack(model, tmp_path, 1), repack(model, tmp_path, 2)
    check_scanners_agree(one, two, model)
    check_refused(one)
