"""The corpus checks, shared by the external-tool tier (test_corpus.py) and the tarfile-only cases
(test_python_corpus.py). Each raises AssertionError with a readable message."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from corpus.conftest import Repacked
from corpus.oracle import (
    ROOT_HP,
    Row,
    diff,
    engine_rows,
    gzip_members,
    libarchive_as_engine,
    libarchive_entries,
    libarchive_rows,
    norm,
    snapshot,
    tar_stream,
    tarfile_infos,
    tarfile_rows,
    tree_diff,
)
from corpus.writers import HP_GIVEN, Case, need, run

VOLATILE = {"elapsed_seconds", "publish_seconds", "scanner", "output", "bytes_read", "bytes_copied", "bytes_written"}


def check_scanners_agree(one: Repacked, two: Repacked, model: Path) -> None:
    """Same exit code, same stderr shape, byte-identical output, same result (but for timings and the scanner)."""
    assert one.rc == two.rc, (f"exit {one.rc} with one thread, {two.rc} with two\n  1: {one.stderr.strip()}\n"
                              f"  2: {two.stderr.strip()}")
    assert one.output == two.output, "the two scanners wrote different bytes"
    if one.result and two.result:
        a = {k: v for k, v in one.result.items() if k not in VOLATILE}
        b = {k: v for k, v in two.result.items() if k not in VOLATILE}
        assert a == b, f"results differ: {a} != {b}"
        if gzip_members(model.read_bytes()) == 1:
            assert two.result["scanner"] == "rapidgzip", f"two threads did not use the parallel scanner: {two.result}"


def check_ok(case: Case, r: Repacked, model: Path) -> None:
    assert r.rc == 0, f"exit {r.rc} (threads={r.threads}): {r.stderr.strip()}"
    assert r.output is not None and not r.leftovers, f"output {r.output is not None}, leftovers {r.leftovers}"
    assert r.result is not None
    want = "preserved" if case.expect == "preserve" else "injected"
    assert r.result["decision"] == want, f"decision {r.result['decision']!r}, want {want!r}"
    if case.expect == "preserve":
        data = model.read_bytes()
        if data[:2] == b"\x1f\x8b":
            assert r.output == data, "preserved, but the output is not the input byte for byte"
        else:
            assert tar_stream(r.path) == data, "preserved a plain tar, but the output does not decompress to it"


def check_refused(r: Repacked) -> None:
    """Exit 2, one error line on stderr (besides the INFO log lines), no output and nothing left behind."""
    lines = [line for line in r.stderr.splitlines()
             if line.strip() and not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ", line)]
    assert r.rc == 2, f"exit {r.rc} (threads={r.threads}), want 2: {r.stderr.strip()[-500:]}"
    assert len(lines) == 1 and lines[0].startswith("dummy-training: error: "), f"not one error line: {r.stderr!r}"
    assert r.output is None and not r.leftovers, f"output left behind: {r.output is not None}, {r.leftovers}"


# ------------------------------------------------------------------------------------------- member lists
def check_member_lists(model: Path, readers: tuple[str, ...]) -> list[Row]:
    """The engine's member list equals each reader's ("tarfile", "libarchive"). Returns it."""
    tar = tar_stream(model)
    engine = engine_rows(tar)
    problems = []
    if "tarfile" in readers:
        problems.append(diff("engine", engine, "tarfile", tarfile_rows(tar)))
    if "libarchive" in readers:
        mine, theirs = libarchive_as_engine(tar, engine, libarchive_rows(model))
        problems.append(diff("engine", mine, "libarchive", theirs))
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)
    return engine


def _hp_row(offset: int) -> Row:
    return Row(ROOT_HP, "file", len(HP_GIVEN), None, offset)


def check_output_listing(model: Path, r: Repacked, *, external: bool) -> None:
    """The output lists the input's members plus exactly one root hyperparameters.json (appended at the input's
    end marker) reading 0:0, no user/group names, mode 0644 and the reported mtime, in every reader."""
    assert r.result is not None and r.output is not None
    mtime = r.result["mtime"]
    tar_in = tar_stream(model)
    tar_out = tar_stream(r.path)
    before = tarfile_rows(tar_in)
    after = tarfile_rows(tar_out)
    end = after[-1].offset if after else 0
    assert not any(row.name == ROOT_HP for row in before), "the input already had a root hyperparameters.json"
    msg = diff("tarfile(output)", after, "tarfile(input)+hp", before + [_hp_row(end)])
    assert not msg, msg
    spelled = injected_name(model, external=external)
    info = tarfile_infos(tar_out)[-1]
    got = (info.name, info.uid, info.gid, info.uname, info.gname, info.mode, info.mtime, info.type)
    assert got == (spelled, 0, 0, "", "", 0o644, mtime, tarfile.REGTYPE), f"tarfile reads {got}"
    with tarfile.open(fileobj=__import__("io").BytesIO(tar_out)) as tf:
        member = tf.extractfile(tf.getmembers()[-1])
        assert member is not None and member.read() == HP_GIVEN.encode()
    if not external:
        return
    lib_in = libarchive_rows(model)
    lib_out = libarchive_rows(r.path)
    msg = diff("libarchive(output)", lib_out, "libarchive(input)+hp", lib_in + [_hp_row(end)])
    assert not msg, msg
    e = libarchive_entries(r.path)[-1]
    got_l = (e["name"], e["uid"], e["gid"], e["uname"] or "", e["gname"] or "", e["mode"] & 0o7777, e["mtime"])
    assert got_l == (spelled.encode(), 0, 0, "", "", 0o644, mtime), f"libarchive reads {got_l}"
    # GNU tar and bsdtar, as a person lists the archive
    for argv, pattern in (
        (["tar", "-tv", "--full-time", "--quoting-style=literal", "-f"],
         rb"-rw-r--r-- 0/0 +%d \d{4}-\d\d-\d\d \d\d:\d\d:\d\d " + re.escape(spelled.encode())),
        (["bsdtar", "-tv", "-f"], rb"-rw-r--r-- +\d+ 0 +0 +%d .* " + re.escape(spelled.encode())),
    ):
        rc_in, lines_in, err_in = _listing(argv, model)
        rc_out, lines_out, err_out = _listing(argv, r.path)
        assert (rc_in, err_in) == (rc_out, err_out), f"{argv[0]} lists with other errors: {err_in} vs {err_out}"
        assert lines_out[:-1] == lines_in, f"{argv[0]} lists the input's members differently in the output"
        assert re.fullmatch(pattern % len(HP_GIVEN), lines_out[-1]), f"{argv[0]} -tv: {lines_out[-1]!r}"
    gnu = run(["tar", "-tv", "--full-time", "-f", r.path]).splitlines()[-1].decode()
    import time

    assert time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(mtime)) in gnu, f"GNU tar mtime: {gnu!r} vs {mtime}"


def injected_name(model: Path, *, external: bool) -> str:
    """The name the engine promises the injected member: ``./hyperparameters.json`` when the input's first member
    (the root entry aside) starts with ``./``, else ``hyperparameters.json``; the input's names as libarchive reads
    them (``external``; tarfile reads an old-GNU atime field as a prefix) or tarfile."""
    if external:
        names = [os.fsdecode(e["name"]) for e in libarchive_entries(model)]
    else:
        names = [i.name for i in tarfile_infos(tar_stream(model))]
    first = next((n for n in names if norm(n) != b"."), "")
    return ("./" if first.startswith("./") else "") + "hyperparameters.json"


def _listing(argv: list[str], archive: Path) -> tuple[int, list[bytes], list[str]]:
    """(exit code, stdout lines, error lines without the archive's path): bsdtar lists a GNU posix archive with a
    non-UTF-8 name but exits 1 ("Pathname can't be converted from UTF-8 to current locale")."""
    need(argv[0])
    proc = subprocess.run([*argv, str(archive)], capture_output=True, check=False,
                          env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"})
    errors = proc.stderr.decode(errors="replace").replace(str(archive), "ARCHIVE").splitlines()
    return proc.returncode, proc.stdout.splitlines(), errors


# ------------------------------------------------------------------------------------------- extraction
def _extract(tool: str, archive: Path, dest: Path) -> tuple[int, list[str]]:
    """(exit code, error lines without the archive's path). A tool may fail on the input (bsdtar cannot convert a
    non-UTF-8 pax path to the locale's charset): then it must fail the same way on the output."""
    dest.mkdir()
    if tool == "tarfile":
        with tarfile.open(fileobj=__import__("io").BytesIO(tar_stream(archive))) as tf:
            tf.extractall(dest, filter="tar")
        return 0, []
    argv = ["tar", "-xpf", str(archive), "-C", str(dest)] if tool == "gnu-tar" else \
        ["bsdtar", "-xpf", str(archive), "-C", str(dest)]
    proc = subprocess.run(argv, capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"}, check=False)
    text = proc.stderr.decode(errors="replace").replace(str(archive), "ARCHIVE").replace(str(dest), "DEST")
    return proc.returncode, text.splitlines()


def check_extraction(model: Path, r: Repacked, work: Path, tools: tuple[str, ...], *, injected: bool) -> None:
    """Each tool extracts input and output to the same tree, but for the one new root hyperparameters.json."""
    for tool in tools:
        if tool != "tarfile":
            need("tar" if tool == "gnu-tar" else "bsdtar")
        base = work / f"x-{tool}"
        if base.exists():
            shutil.rmtree(base)
        base.mkdir()
        got_in = _extract(tool, model, base / "in")
        got_out = _extract(tool, r.path, base / "out")
        assert got_in == got_out, f"{tool} extracts input and output with other errors: {got_in} vs {got_out}"
        tin, tout = snapshot(base / "in"), snapshot(base / "out")
        if injected:
            new = tout.pop(ROOT_HP, None)
            assert new is not None, f"{tool}: no root hyperparameters.json in the extracted output"
            assert new[:2] == ("file", 0o644) and new[3:5] == (0, 0), f"{tool}: extracted {new}"
            assert (base / "out" / "hyperparameters.json").read_bytes() == HP_GIVEN.encode()
            assert r.result is not None and new[5] == r.result["mtime"], f"{tool}: mtime {new[5]}"
        lines = tree_diff(tin, tout)
        assert not lines, f"{tool} extracts the output differently:\n" + "\n".join(lines)
        shutil.rmtree(base)


def describe(r: Repacked) -> str:
    return json.dumps({"rc": r.rc, "stderr": r.stderr.strip()[-300:], "result": r.result})


__all__ = ["check_extraction", "check_member_lists", "check_ok", "check_output_listing", "check_refused",
           "check_scanners_agree", "describe", "norm", "subprocess"]
