"""Reproducible output: the same inputs give the same bytes whatever the clock, the scanner (rapidgzip or the
single-thread one), the source kind (local file or generic) and the number of compressing threads. The injected
member's mtime is SOURCE_DATE_EPOCH when set, else the newest member mtime; its owner is 0:0 with no names."""

from __future__ import annotations

import gzip
import io
import math
import random
import tarfile
import time
from pathlib import Path

import pytest
from archives import COMPRESSORS, Entry, build_tar, file, gz, model_entries, old_gnu_sparse
from engine_helpers import gnu_tools_accept, members, repack_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dummy_training.contract import ROOT_HYPERPARAMETERS_NAMES
from dummy_training.ends.local_file import LocalFileSink, LocalFileSource
from dummy_training.engine import archive as engine
from dummy_training.engine.parallel_deflate import DeflateStream
from dummy_training.engine.splice import MAX_USTAR_MTIME
from dummy_training.engine.tar_scan import TarScanner
from dummy_training.errors import EXIT_INVALID_INPUT, InvalidInputError

NEW_HP = b'{"injected": true, "lr": 0.1}'
NEWEST = 1_765_432_100


@pytest.fixture(autouse=True)
def _no_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's or CI's own SOURCE_DATE_EPOCH must not decide these tests."""
    monkeypatch.delenv(engine.SOURCE_DATE_EPOCH_ENV, raising=False)


def _entries_with_a_newest_member() -> list[Entry]:
    """A model whose newest member sits in the middle of the archive (neither first nor last)."""
    entries = model_entries(weights_size=50_000)
    entries.insert(4, file("./late.txt", b"written last", mtime=NEWEST))
    entries.append(file("./early.txt", b"old", mtime=1_000))
    return entries


def _archive(compressor: str | None = "gzip-6", fmt: int = tarfile.PAX_FORMAT) -> bytes:
    tar = build_tar(_entries_with_a_newest_member(), fmt)
    return tar if compressor is None else COMPRESSORS[compressor](tar)


def _sparse_archive() -> bytes:
    tar = build_tar(_entries_with_a_newest_member(), tarfile.GNU_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        header = tf.getmember("./model/weights.bin").offset_data - 512
    return gz(old_gnu_sparse(tar, header))


#: Inputs that take each way of writing the output: name -> (archive, method)
PATHS = {
    "splice": (lambda: _archive("gzip-6"), "splice"),
    "splice-multi-member": (lambda: _archive("multi-member-5"), "splice"),
    "splice-one-deflate-block": (lambda: _archive("zlib-ng-1"), "splice"),  # the whole tar is the tail
    "plain-tar-reencode": (lambda: _archive(None), "reencode"),
    "old-gnu-sparse-reencode": (_sparse_archive, "reencode"),
}


def _injected(out: Path) -> tarfile.TarInfo:
    with tarfile.open(out) as tf:
        last = tf.getmembers()[-1]
    assert last.name in ROOT_HYPERPARAMETERS_NAMES
    return last


def _repack(data: bytes, tmp_path: Path, *, generic: bool = False) -> tuple[engine.EngineResult, bytes]:
    result, out = repack_bytes(data, tmp_path, NEW_HP, generic=generic, mtime=None)
    return result, out.read_bytes()


# --------------------------------------------------------------------------------- the member's mtime
@pytest.mark.parametrize("path", list(PATHS))
def test_without_source_date_epoch_the_mtime_is_the_newest_members(tmp_path: Path, path: str) -> None:
    build, method = PATHS[path]
    result, out = repack_bytes(build(), tmp_path, NEW_HP, mtime=None)
    assert result.method == method
    assert (result.mtime, result.mtime_source) == (NEWEST, "newest member")
    assert _injected(out).mtime == NEWEST


@pytest.mark.parametrize("path", list(PATHS))
def test_source_date_epoch_sets_the_mtime(tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    result, out = repack_bytes(PATHS[path][0](), tmp_path, NEW_HP, mtime=None)
    assert (result.mtime, result.mtime_source) == (1_234_567_890, "SOURCE_DATE_EPOCH")
    assert _injected(out).mtime == 1_234_567_890


def test_the_mtime_argument_overrides_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    result, out = repack_bytes(_archive(), tmp_path, NEW_HP, mtime=1_111_111_111)
    assert (result.mtime, result.mtime_source) == (1_111_111_111, "mtime argument")
    assert _injected(out).mtime == 1_111_111_111


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_source_date_epoch_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    result, _ = repack_bytes(_archive(), tmp_path, NEW_HP, mtime=None)
    assert (result.mtime, result.mtime_source) == (NEWEST, "newest member")


@pytest.mark.parametrize("value", ["yesterday", "-1", "1.5", "0x10", "1e9", "١٢٣", str(MAX_USTAR_MTIME + 1)])
def test_a_bad_source_date_epoch_is_exit_2_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(InvalidInputError, match="SOURCE_DATE_EPOCH") as err:
        repack_bytes(_archive(), tmp_path, NEW_HP, mtime=None)
    assert err.value.exit_code == EXIT_INVALID_INPUT
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_preserve_records_no_mtime(tmp_path: Path) -> None:
    data = gz(build_tar([*model_entries(root_hyperparameters=b"{}")]))
    result, out = repack_bytes(data, tmp_path, NEW_HP, mtime=None)
    assert (result.decision, result.mtime, result.mtime_source) == ("preserved", None, "")
    assert out.read_bytes() == data


def test_an_archive_without_members_gives_mtime_0(tmp_path: Path) -> None:
    result, out = repack_bytes(gz(build_tar([])), tmp_path, NEW_HP, mtime=None)
    assert (result.mtime, result.mtime_source) == (0, "no member mtime")
    assert _injected(out).mtime == 0


def _scan(tar: bytes) -> TarScanner:
    scanner = TarScanner()
    scanner.feed(tar)
    scanner.finish()
    return scanner


def test_the_newest_mtime_reads_pax_records_and_skips_what_is_not_a_time() -> None:
    # a PAX mtime record (fractional here) wins over the header's whole seconds
    fractional = Entry("b", mtime=1_800_000_000.75)  # type: ignore[arg-type]
    assert _scan(build_tar([file("a", b"a", mtime=5), fractional])).newest_mtime == 1_800_000_000
    # before 1970 (a negative PAX record, or GNU base-256) does not count
    assert _scan(build_tar([file("a", b"a", mtime=-50), file("b", b"b", mtime=7)])).newest_mtime == 7
    assert _scan(build_tar([file("a", b"a", mtime=-50), file("b", b"b", mtime=9)], tarfile.GNU_FORMAT)) \
        .newest_mtime == 9
    # past what ustar holds: a PAX record (or GNU base-256) carries it, and the injected mtime is capped
    far = _scan(build_tar([file("a", b"a", mtime=MAX_USTAR_MTIME + 10)], tarfile.GNU_FORMAT))
    assert far.newest_mtime == MAX_USTAR_MTIME + 10
    assert engine.MtimeRule().choose(far) == (MAX_USTAR_MTIME, "newest member")
    # a field that is not a number at all is refused: tarfile stops reading the archive there (the readers'
    # rule, tests/engine/test_readers_rule.py), so no reader-independent mtime exists
    tar = bytearray(build_tar([file("a", b"a", mtime=11), file("b", b"b", mtime=3)], tarfile.USTAR_FORMAT))
    tar[136:148] = b"not a time!\0"
    tar[148:156] = b" " * 8
    tar[148:155] = b"%06o\0" % sum(tar[:512])
    with pytest.raises(InvalidInputError, match="bad mtime field"):
        _scan(bytes(tar))
    assert _scan(build_tar([])).newest_mtime is None


# ------------------------------------------------------------------------------- the member's header
@pytest.mark.parametrize("path", list(PATHS))
def test_the_injected_member_is_root_owned_0644_plain_ustar(tmp_path: Path, path: str) -> None:
    _, out = repack_bytes(PATHS[path][0](), tmp_path, NEW_HP, mtime=None)
    info = _injected(out)
    assert (info.uid, info.gid, info.uname, info.gname, info.mode, info.type) == (0, 0, "", "", 0o644,
                                                                                  tarfile.REGTYPE)
    assert info.pax_headers == {}  # no PAX header (no atime/ctime/mtime records) precedes it
    header = gzip.decompress(out.read_bytes())[info.offset : info.offset + 512]
    assert header[257:265] == b"ustar\x0000"
    assert header[265:500] == bytes(235)  # uname, gname, device numbers, prefix (GNU's atime/ctime): all empty
    assert gnu_tools_accept(out)[-1] in ROOT_HYPERPARAMETERS_NAMES


# ------------------------------------------------------------------------------------- same bytes
def _clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setattr(time, "time", lambda: seconds)


@pytest.mark.parametrize("path", list(PATHS))
def test_a_later_clock_gives_the_same_bytes(tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = PATHS[path][0]()
    _clock(monkeypatch, 1_000_000_000.0)
    _, first = _repack(data, tmp_path / "1")
    _clock(monkeypatch, 2_000_000_000.0)
    _, second = _repack(data, tmp_path / "2")
    assert first == second


def test_the_written_gzip_header_has_no_time_no_name_and_no_host(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-encode path writes the gzip header itself: MTIME 0, no FNAME/FCOMMENT/FEXTRA, OS 255 (unknown),
    whatever the input's name and the clock (gzip.GzipFile would write both)."""
    tar = _archive(None)
    outputs = []
    for n, (name, now) in enumerate([("model.tar", 1e9), ("another-name.tar", 2e9)]):
        _clock(monkeypatch, now)
        src = tmp_path / str(n) / name
        src.parent.mkdir()
        src.write_bytes(tar)
        sink = LocalFileSink(tmp_path / str(n) / "out" / "model.tar.gz")
        with LocalFileSource(src) as source:
            result = engine.repack_archive(source, sink, NEW_HP)
        sink.commit()
        assert result.method == "reencode"
        outputs.append((tmp_path / str(n) / "out" / "model.tar.gz").read_bytes())
    assert outputs[0] == outputs[1]
    head = outputs[0][:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] & 0b11100 == 0  # FEXTRA, FNAME, FCOMMENT
    assert head[4:8] == bytes(4)  # MTIME
    assert head[9] == 255  # OS: unknown


def test_plain_tar_preserve_is_reproducible_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tar = build_tar(model_entries(root_hyperparameters=b"{}"))
    _clock(monkeypatch, 1e9)
    _, first = _repack(tar, tmp_path / "1")
    _clock(monkeypatch, 2e9)
    _, second = _repack(tar, tmp_path / "2")
    assert first == second
    assert first[4:8] == bytes(4)
    assert gzip.decompress(first) == tar


@pytest.mark.parametrize("compressor", ["zlib-ng-1", None], ids=["splice-tail-of-3-MiB", "plain-tar-of-3-MiB"])
def test_compressing_threads_do_not_change_the_bytes(tmp_path: Path, compressor: str | None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A tail of several 1 MiB chunks (zlib-ng level 1 writes one deflate block: the whole archive is the tail)
    is compressed on a thread pool sized by the CPUs: the bytes must not depend on it."""
    rng = random.Random(3)
    tar = build_tar([file("weights.bin", rng.randbytes(1 << 20) + bytes(2 << 20)), file("b.txt", b"b" * 999)])
    data = tar if compressor is None else COMPRESSORS[compressor](tar)
    outputs = {}
    for threads in (1, 2, 5):
        monkeypatch.setattr(engine, "compress_threads", lambda threads=threads: threads)
        _, outputs[threads] = _repack(data, tmp_path / str(threads))
    assert outputs[1] == outputs[2] == outputs[5]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 400_000), cuts=st.lists(st.integers(0, 400_000), max_size=6),
       threads=st.integers(2, 6), chunk=st.sampled_from([4096, 65536]))
def test_deflate_stream_bytes_depend_on_the_input_only(size: int, cuts: list[int], threads: int,
                                                       chunk: int) -> None:
    """However the input arrives in pieces and on however many threads: the bytes of one thread, one piece."""
    rng = random.Random(size)
    data = bytes(rng.getrandbits(3) for _ in range(size))
    points = sorted({min(c, size) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, size], strict=True)]
    one = b"".join(DeflateStream([data], dictionary=b"window", chunk_size=chunk, threads=1))
    many = b"".join(DeflateStream(iter(pieces), dictionary=b"window", chunk_size=chunk, threads=threads))
    assert one == many


# ---------------------------------------------------------------------------------- property test
_mtimes = st.one_of(st.integers(0, MAX_USTAR_MTIME), st.integers(1_500_000_000, 1_800_000_000),
                    st.integers(-10_000, -1))
_contents = st.one_of(st.binary(max_size=2000), st.integers(0, 70_000).map(bytes),
                      st.integers(1, 70_000).map(lambda n: (b"weights " * (n // 8 + 1))[:n]))


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[bytes, bool, str]:
    fmt = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    entries: list[Entry] = []
    for i in range(draw(st.integers(0, 8))):
        mtime = draw(_mtimes)
        if fmt == tarfile.USTAR_FORMAT:
            mtime = max(0, mtime)
        kind = draw(st.sampled_from(["file", "file", "dir", "symlink"]))
        if kind == "file":
            entries.append(file(f"m/f{i}.bin", draw(_contents), mtime=mtime))
        elif kind == "dir":
            entries.append(Entry(f"d{i}", tarfile.DIRTYPE, mode=0o755, mtime=mtime))
        else:
            entries.append(Entry(f"l{i}", tarfile.SYMTYPE, linkname="m", mode=0o777, mtime=mtime))
    has_hp = draw(st.booleans()) and draw(st.booleans())  # a quarter preserve
    if has_hp:
        entries.insert(draw(st.integers(0, len(entries))), file("hyperparameters.json", b'{"own": 1}'))
    tar = build_tar(entries, fmt)
    if entries and draw(st.booleans()):  # no end-of-archive marker: accepted, like tar and tarfile do
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.getmembers()
            tar = tar[: tf.offset]
    compressor = draw(st.sampled_from(["gzip-6", "gzip-1", "gzip-9", "isal-2", "zlib-ng-1", "multi-member-2",
                                       "sync-flush", "stored", "plain"]))
    return (tar if compressor == "plain" else COMPRESSORS[compressor](tar)), has_hp, compressor


def _expected_mtime(data: bytes) -> tuple[int, str]:
    """The newest member mtime as Python's tarfile reads the input (an oracle independent of the engine)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        times = [math.floor(m.mtime) for m in tf if m.mtime >= 0]
    return (min(max(times), MAX_USTAR_MTIME), "newest member") if times else (0, "no member mtime")


# (local path or generic source, parallel scanner allowed, compressing threads, clock)
VARIANTS = [(False, True, 1, 1.0e9), (False, False, 4, 1.5e9), (True, False, 2, 2.0e9), (False, True, 3, 2.5e9)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(case=_inputs())
def test_two_runs_give_the_same_bytes_whatever_the_scanner_source_threads_and_clock(
        tmp_path_factory: pytest.TempPathFactory, case: tuple[bytes, bool, str]) -> None:
    data, has_hp, compressor = case
    tmp = tmp_path_factory.mktemp("repro")
    outputs, scanners, kept = [], set(), set()
    for n, (generic, parallel, threads, now) in enumerate(VARIANTS):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engine, "_parallel_worthwhile", lambda parallel=parallel: parallel)
            mp.setattr(engine, "compress_threads", lambda threads=threads: threads)
            _clock(mp, now)
            result, out = _repack(data, tmp / str(n), generic=generic)
        outputs.append(out)
        scanners.add(result.scanner)
        kept.add(result.kept_prefix)
    assert all(o == outputs[0] for o in outputs[1:])
    assert len(kept) == 1  # the same splice point from every scanner
    if compressor in ("gzip-6", "gzip-1", "gzip-9", "isal-2", "sync-flush", "stored"):  # rapidgzip takes these
        assert "rapidgzip" in scanners and len(scanners) == 2, scanners
    if has_hp:
        assert result.decision == "preserved"
    else:
        assert result.decision == "injected"
        assert (result.mtime, result.mtime_source) == _expected_mtime(data)
        assert members(outputs[0])[-1][3] == result.mtime
