"""Behaviour of the repack engine: inject (splice / reencode), preserve, validation, both scanner paths."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from archives import (
    COMPRESSORS,
    HOSTILE_ARCHIVES,
    HYPERPARAMETERS_BYTES,
    SPECIAL_ARCHIVES,
    build_tar,
    file,
    gz,
    make_model_archive,
    old_gnu_sparse,
)
from engine_helpers import RemoteLikeSource, gnu_tools_accept, members, repack_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dummy_training.contract import DECISION_INJECTED, DECISION_PRESERVED
from dummy_training.ends.local_file import LocalFileSink, LocalFileSource
from dummy_training.engine import archive as engine
from dummy_training.engine import gzip_scan
from dummy_training.errors import InputNotFoundError, InvalidInputError

NEW_HP = b'{"injected": true, "lr": 0.1}'


PARALLEL_WORTHWHILE = engine._parallel_worthwhile  # the real one, tested below


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local files take the rapidgzip scanner whatever CPUs this machine allows (the engine skips it on one)."""
    monkeypatch.setattr(engine, "_parallel_worthwhile", lambda: True)


@pytest.mark.parametrize("compressor", ["gzip-6", "gzip-1", "isal-2", "zlib-ng-9", "stored"])
def test_parallel_and_generic_scanners_agree(tmp_path: Path, compressor: str) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(make_model_archive(compressor=compressor, weights_size=2_000_000))
    with LocalFileSource(path) as src:
        fast = gzip_scan.scan_gzip_parallel(src)
        slow = gzip_scan.scan_gzip(RemoteLikeSource(src))
    assert fast is not None and fast.scanner == "rapidgzip"
    assert fast.point == slow.point
    assert (fast.tar.end, fast.uncompressed_size) == (slow.tar.end, slow.uncompressed_size)


def test_parallel_scanner_declines_multi_member(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(make_model_archive(compressor="multi-member-5"))
    with LocalFileSource(path) as src:
        assert gzip_scan.scan_gzip_parallel(src) is None


def assert_injected(original: bytes, out: Path, hyperparameters: bytes = NEW_HP) -> None:
    """Output = every original member unchanged, then a root hyperparameters.json with the given bytes."""
    names = gnu_tools_accept(out)
    assert names[-1] == "hyperparameters.json"
    before = members(original)
    after = members(out.read_bytes())
    assert after[:-1] == before
    name, typ, mode, _mtime, linkname, uid, gid, content = after[-1]
    assert (name, typ, mode, linkname, uid, gid, content) == (
        "hyperparameters.json", tarfile.REGTYPE, 0o644, "", 0, 0, hyperparameters)
    # the tar stream is padded to whole 10240-byte records
    assert len(gzip.decompress(out.read_bytes())) % 10240 == 0


@pytest.mark.parametrize("generic", [False, True], ids=["local-scanner", "generic-scanner"])
@pytest.mark.parametrize("compressor", sorted(COMPRESSORS))
def test_inject_preserves_every_member_for_every_compressor(tmp_path: Path, compressor: str, generic: bool) -> None:
    data = make_model_archive(compressor=compressor, small_files=30)
    result, out = repack_bytes(data, tmp_path, NEW_HP, generic=generic)
    assert result.decision == DECISION_INJECTED
    assert result.method == "splice"
    assert_injected(data, out)
    # the bytes before the splice point are the input's own
    output = out.read_bytes()
    assert result.kept_prefix > 0
    assert output[: result.kept_prefix] == data[: result.kept_prefix]
    assert result.output_size == len(output)
    assert result.input_size == len(data)
    assert result.member_count == len(members(data))
    expected_gzip_members = {"multi-member-2": 2, "multi-member-5": 5}.get(compressor, 1)
    assert result.gzip_members == expected_gzip_members


def test_large_archive_keeps_most_bytes_verbatim(tmp_path: Path) -> None:
    data = make_model_archive(weights_size=3_000_000, small_files=50)
    for generic in (False, True):
        result, out = repack_bytes(data, tmp_path, NEW_HP, generic=generic)
        assert result.method == "splice"
        assert result.kept_prefix > len(data) * 0.9
        assert_injected(data, out)


@pytest.mark.parametrize("name", sorted(SPECIAL_ARCHIVES))
def test_special_archives_inject(tmp_path: Path, name: str) -> None:
    data = SPECIAL_ARCHIVES[name]()
    result, out = repack_bytes(data, tmp_path, NEW_HP)
    assert result.decision == DECISION_INJECTED
    assert result.method == ("reencode" if name.endswith("plain") or name == "plain-tar" else "splice")
    assert_injected(data, out)


def test_zero_member_archive(tmp_path: Path) -> None:
    result, out = repack_bytes(SPECIAL_ARCHIVES["zero-members"](), tmp_path, NEW_HP)
    assert result.member_count == 0 and result.members == []
    assert [m[0] for m in members(out.read_bytes())] == ["hyperparameters.json"]


def test_plain_tar_is_reencoded_to_gzip(tmp_path: Path) -> None:
    data = make_model_archive(compressor=None)
    result, out = repack_bytes(data, tmp_path, NEW_HP)
    assert (result.method, result.gzip_members, result.kept_prefix) == ("reencode", 0, 0)
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert_injected(data, out)


def test_splice_and_reencode_give_the_same_tar(tmp_path: Path) -> None:
    tar = make_model_archive(compressor=None, small_files=20)
    _, spliced = repack_bytes(gz(tar), tmp_path / "a", NEW_HP)
    _, reencoded = repack_bytes(tar, tmp_path / "b", NEW_HP)
    assert gzip.decompress(spliced.read_bytes()) == gzip.decompress(reencoded.read_bytes())


@pytest.mark.parametrize("generic", [False, True], ids=["local-scanner", "generic-scanner"])
@pytest.mark.parametrize("prefix", ["./", ""])
def test_preserve_outputs_the_input_byte_for_byte(tmp_path: Path, prefix: str, generic: bool) -> None:
    data = make_model_archive(with_hyperparameters=True, prefix=prefix, small_files=20)
    result, out = repack_bytes(data, tmp_path, NEW_HP, generic=generic)
    assert (result.decision, result.method) == (DECISION_PRESERVED, "copy")
    assert out.read_bytes() == data
    assert result.kept_prefix == result.output_size == len(data)


def test_preserve_without_given_hyperparameters(tmp_path: Path) -> None:
    data = make_model_archive(with_hyperparameters=True, compressor="multi-member-5")
    result, out = repack_bytes(data, tmp_path, None)
    assert result.decision == DECISION_PRESERVED
    assert out.read_bytes() == data


def test_preserve_plain_tar_outputs_gzip_of_the_input(tmp_path: Path) -> None:
    data = make_model_archive(with_hyperparameters=True, compressor=None)
    result, out = repack_bytes(data, tmp_path, None)
    assert (result.decision, result.method) == (DECISION_PRESERVED, "reencode")
    assert gzip.decompress(out.read_bytes()) == data


def test_nested_hyperparameters_do_not_count(tmp_path: Path) -> None:
    data = SPECIAL_ARCHIVES["nested-hyperparameters-only"]()
    result, _ = repack_bytes(data, tmp_path, NEW_HP)
    assert result.decision == DECISION_INJECTED


def test_preserve_still_validates_members_after_the_root_file(tmp_path: Path) -> None:
    tar = build_tar([file("hyperparameters.json", b"{}"), file("../evil", b"x")])
    with pytest.raises(InvalidInputError, match="evil"):
        repack_bytes(gz(tar), tmp_path, None)
    assert not (tmp_path / "out" / "model.tar.gz").exists()


def test_no_root_file_and_no_hyperparameters(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no root hyperparameters.json"):
        repack_bytes(make_model_archive(), tmp_path, None)
    _assert_nothing_published(tmp_path)


def _assert_nothing_published(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"  # made by the sink, removed again by its abort (it was not there before)
    assert not out_dir.exists() or list(out_dir.iterdir()) == [], "no output file and no temp file may remain"


@pytest.mark.parametrize("generic", [False, True], ids=["local-scanner", "generic-scanner"])
@pytest.mark.parametrize("name", sorted(HOSTILE_ARCHIVES))
def test_hostile_archives_are_rejected_and_nothing_is_published(tmp_path: Path, name: str, generic: bool) -> None:
    data = HOSTILE_ARCHIVES[name]()
    for hyperparameters in (NEW_HP, None):
        with pytest.raises(InvalidInputError) as info:
            repack_bytes(data, tmp_path, hyperparameters, generic=generic)
        message = str(info.value)
        assert "\n" not in message and message
        _assert_nothing_published(tmp_path)


@pytest.mark.parametrize("name", ["absolute-path", "dotdot-path", "symlink-escapes", "hardlink-absolute", "fifo",
                                  "char-device", "block-device"])
def test_member_errors_name_the_member(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        repack_bytes(HOSTILE_ARCHIVES[name](), tmp_path, NEW_HP)
    names = {"absolute-path": "/etc/evil", "dotdot-path": "../evil", "symlink-escapes": "model/link",
             "hardlink-absolute": "hard", "fifo": "pipe", "char-device": "dev/thing", "block-device": "dev/thing"}
    assert repr(names[name]) in str(info.value)


def test_not_an_archive_message(tmp_path: Path) -> None:
    for data in (b"", b"plain text\n" * 100):
        with pytest.raises(InvalidInputError, match="not a gzip or tar archive"):
            repack_bytes(data, tmp_path, NEW_HP)


def test_old_gnu_sparse_member_takes_the_reencode_path(tmp_path: Path) -> None:
    # the second member an old-GNU sparse member with a single data chunk (offset 0, 600 bytes)
    header = 1024
    tar = old_gnu_sparse(build_tar([file("a.txt", b"a" * 100), file("sparse.bin", b"s" * 600), file("z.txt", b"z")],
                                   tarfile.GNU_FORMAT), header)
    data = gz(tar)
    result, out = repack_bytes(data, tmp_path, NEW_HP)
    assert result.method == "reencode"
    assert gzip.decompress(out.read_bytes())[: len(tar) - 1024].startswith(bytes(tar[:header]))
    assert [m[0] for m in members(out.read_bytes())] == ["a.txt", "sparse.bin", "z.txt", "hyperparameters.json"]


def test_trailing_tar_data_after_end_marker_is_dropped(tmp_path: Path) -> None:
    tar = build_tar([file("a.txt", b"a")], tarfile.USTAR_FORMAT) + b"junk after the end" + bytes(1000)
    for generic in (False, True):
        result, out = repack_bytes(gz(tar), tmp_path, NEW_HP, generic=generic)
        assert result.method == "splice"
        assert [m[0] for m in members(out.read_bytes())] == ["a.txt", "hyperparameters.json"]


def test_result_lists_members_with_sizes(tmp_path: Path) -> None:
    data = make_model_archive(small_files=600, weights_size=1000)
    result, _ = repack_bytes(data, tmp_path, NEW_HP)
    assert result.member_count == len(members(data))
    assert len(result.members) == 500
    first = result.members[1]
    assert (first.name, first.size, first.type) == ("model/weights.bin", 1000, "file")  # as extracted
    assert {m.type for m in result.members} >= {"file", "dir", "symlink", "hardlink"}
    assert result.uncompressed_size == len(gzip.decompress(data))


def test_progress_reports_input_bytes(tmp_path: Path) -> None:
    data = make_model_archive()
    (tmp_path / "in.tar.gz").write_bytes(data)
    calls: list[tuple[int, int]] = []
    source = LocalFileSource(tmp_path / "in.tar.gz")
    sink = LocalFileSink(tmp_path / "o" / "model.tar.gz")
    engine.repack_archive(source, sink, NEW_HP, progress=lambda d, t: calls.append((d, t)))
    sink.commit()
    assert calls and calls[-1] == (len(data), len(data))
    assert all(0 <= d <= t for d, t in calls)


def test_mtime_of_new_member(tmp_path: Path) -> None:
    _, out = repack_bytes(make_model_archive(), tmp_path, NEW_HP, mtime=1_234_567_890)
    assert members(out.read_bytes())[-1][3] == 1_234_567_890


# ---------------------------------------------------------------------------------- property test
_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzé_-.", min_size=1, max_size=40).filter(
    lambda s: s not in (".", "..") and "hyperparameters" not in s)
_contents = st.one_of(st.binary(max_size=3000), st.integers(0, 60_000).map(lambda n: bytes(n)),
                      st.integers(1, 40_000).map(lambda n: (b"weights " * (n // 8 + 1))[:n]))


@st.composite
def _archives(draw: st.DrawFn) -> tuple[bytes, str]:
    count = draw(st.integers(0, 12))
    entries = []
    used = set()
    for _ in range(count):
        depth = draw(st.integers(0, 3))
        parts = [draw(_names) for _ in range(depth + 1)]
        name = "/".join(parts)
        if name in used or any("/".join(parts[: i + 1]) in used for i in range(len(parts))):
            continue
        used.add(name)
        entries.append(file(name, draw(_contents)))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    compressor = draw(st.sampled_from(sorted(COMPRESSORS)))
    try:
        tar = build_tar(entries, fmt)
    except ValueError:  # name too long for ustar
        tar = build_tar(entries, tarfile.PAX_FORMAT)
    return COMPRESSORS[compressor](tar), compressor


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(archive=_archives(), generic=st.booleans())
def test_property_splice_matches_reencode(tmp_path_factory: pytest.TempPathFactory, archive: tuple[bytes, str],
                                         generic: bool) -> None:
    data, _compressor = archive
    tmp = tmp_path_factory.mktemp("prop")
    result, out = repack_bytes(data, tmp / "s", NEW_HP, generic=generic)
    assert result.method == "splice"
    output = out.read_bytes()
    assert output[: result.kept_prefix] == data[: result.kept_prefix]
    # the reference: the same tar stream through the re-encoding path
    plain = gzip.decompress(data)
    _, ref = repack_bytes(plain, tmp / "r", NEW_HP)
    assert gzip.decompress(output) == gzip.decompress(ref.read_bytes())
    assert members(output)[:-1] == members(data)


def test_hyperparameters_json_is_checked_as_json_object_in_archive(tmp_path: Path) -> None:
    data = make_model_archive(with_hyperparameters=True, hyperparameters=json.dumps({"a": [1, 2]}).encode())
    result, _ = repack_bytes(data, tmp_path, None)
    assert result.decision == DECISION_PRESERVED
    bad = make_model_archive(with_hyperparameters=True, hyperparameters=b'"a string"')
    with pytest.raises(InvalidInputError, match="JSON object"):
        repack_bytes(bad, tmp_path, None)


def test_hyperparameters_helper_is_valid_json() -> None:
    assert isinstance(json.loads(HYPERPARAMETERS_BYTES), dict)
    with tarfile.open(fileobj=io.BytesIO(make_model_archive())) as tf:
        assert "./hyperparameters.json" not in tf.getnames()


def test_scanner_choice_follows_the_cpu_allowance_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engine.SCAN_THREADS_ENV, raising=False)
    monkeypatch.setattr(engine, "available_cpus", lambda: 2.0)
    assert PARALLEL_WORTHWHILE()
    monkeypatch.setattr(engine, "available_cpus", lambda: 1.0)  # e.g. a pod limited to one CPU
    assert not PARALLEL_WORTHWHILE()
    monkeypatch.setenv(engine.SCAN_THREADS_ENV, "2")
    assert PARALLEL_WORTHWHILE()
    monkeypatch.setattr(engine, "available_cpus", lambda: 8.0)
    monkeypatch.setenv(engine.SCAN_THREADS_ENV, "1")
    assert not PARALLEL_WORTHWHILE()


def test_cgroup_limit_caps_available_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_cgroup_cpu_limit", lambda: 1.5)
    assert engine.available_cpus() <= 1.5
    monkeypatch.setattr(engine, "_cgroup_cpu_limit", lambda: None)
    assert engine.available_cpus() >= 1


class _RecordingSink:
    """A LocalFileSink that records the copy_range calls the engine makes."""

    def __init__(self, target: Path) -> None:
        self.inner = LocalFileSink(target)
        self.copies: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def copy_range(self, source: object, start: int, end: int) -> None:
        self.copies.append((start, end))
        self.inner.copy_range(source, start, end)  # type: ignore[arg-type]


@pytest.mark.parametrize("generic", [False, True], ids=["parallel", "generic"])
def test_background_copies_stay_block_aligned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              generic: bool) -> None:
    """Every copy of the kept prefix made during the scan ends on a COPY_ALIGN multiple (so copy_file_range can
    share extents on XFS/btrfs); only the last one ends at the exact splice point."""
    monkeypatch.setattr(engine, "COPY_ALIGN", 64 << 10)
    monkeypatch.setattr(gzip_scan, "KEPT_STEP", 256 << 10)
    monkeypatch.setattr(gzip_scan, "PARALLEL_READ", 256 << 10)
    data = make_model_archive(weights_size=3_000_000, small_files=50)
    src_path = tmp_path / "in.tar.gz"
    src_path.write_bytes(data)
    sink = _RecordingSink(tmp_path / "out" / "model.tar.gz")
    with LocalFileSource(src_path) as local:
        source = RemoteLikeSource(local) if generic else local
        result = engine.repack_archive(source, sink, NEW_HP)  # type: ignore[arg-type]
        sink.inner.commit()
    assert result.method == "splice"
    assert len(sink.copies) >= 2, sink.copies
    *background, last = sink.copies
    assert all(end % (64 << 10) == 0 for _, end in background), background
    assert [s for s, _ in sink.copies] == [0] + [e for _, e in sink.copies[:-1]]  # contiguous from 0
    assert last[1] == result.kept_prefix
    assert_injected(data, tmp_path / "out" / "model.tar.gz")


@pytest.mark.parametrize(("compressor", "long_blocks"), [("zlib-ng-1", True), ("isal-0", True), ("gzip-6", False),
                                                         ("gzip-1", False), ("stored", False), ("sync-flush", False)])
def test_long_block_probe_tells_one_block_streams_apart(tmp_path: Path, compressor: str, long_blocks: bool) -> None:
    data = make_model_archive(weights_size=400_000, small_files=3, compressor=compressor)
    path = tmp_path / "m.tar.gz"
    path.write_bytes(data)
    with LocalFileSource(path) as source:
        assert gzip_scan.has_long_blocks(source, limit=64 << 10) is long_blocks
        assert gzip_scan.has_long_blocks(source, limit=len(data)) is False  # no verdict past the stream's end


def test_long_block_probe_leaves_other_inputs_to_the_scanners(tmp_path: Path) -> None:
    for name, data in {"plain": b"not gzip" * 100, "truncated": make_model_archive()[:30]}.items():
        path = tmp_path / name
        path.write_bytes(data)
        with LocalFileSource(path) as source:
            assert gzip_scan.has_long_blocks(source) is False  # not gzip, or it ends before any verdict


def test_one_block_archive_skips_the_parallel_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rapidgzip cannot split a stream that is one deflate block: it would decode it on one thread, in memory,
    until the budget stopped it. The probe sends it straight to the single-thread scanner."""
    monkeypatch.setattr(engine, "_parallel_worthwhile", lambda: True)

    def no_child(*_a: object, **_k: object) -> None:
        raise AssertionError("the parallel scan was started")

    monkeypatch.setattr(engine, "run_in_child", no_child)
    data = make_model_archive(weights_size=6_000_000, small_files=3, compressor="zlib-ng-1")
    assert len(data) > engine.PARALLEL_READ
    result, out = repack_bytes(data, tmp_path, b'{"epochs": "3"}')
    assert result.scanner != "rapidgzip" and result.method == "splice"
    assert members(out.read_bytes())[:-1] == members(data)
