"""LocalFileSource / LocalFileSink: ordering of copies and writes, atomic publish, cleanup, I/O errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from archives import make_model_archive
from engine_helpers import RemoteLikeSource

from dummy_training.ends import local_file
from dummy_training.ends.base import ByteSource, Sink
from dummy_training.ends.local_file import LocalFileSink, LocalFileSource
from dummy_training.engine.archive import repack_archive
from dummy_training.errors import InputNotFoundError, RuntimeIOError


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    path = tmp_path / "src.bin"
    path.write_bytes(os.urandom(300_000))
    return path


def test_source_reads(source_file: Path) -> None:
    data = source_file.read_bytes()
    with LocalFileSource(source_file) as src:
        assert isinstance(src, ByteSource)
        assert src.size == len(data)
        assert src.local_path == str(source_file)
        assert b"".join(src.chunks(10, 200_000, 4096)) == data[10:200_000]
        assert b"".join(src.chunks()) == data
        assert src.pread(len(data) - 5, 100) == data[-5:]
        assert src.provenance()["size"] == str(len(data))


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        LocalFileSource(tmp_path / "nope.tar.gz")


@pytest.mark.parametrize("remote", [False, True], ids=["copy_file_range", "read-write"])
def test_sink_orders_copies_and_writes(tmp_path: Path, source_file: Path, remote: bool) -> None:
    data = source_file.read_bytes()
    target = tmp_path / "out" / "model.tar.gz"
    with LocalFileSource(source_file) as local:
        src = RemoteLikeSource(local) if remote else local
        sink = LocalFileSink(target)
        assert isinstance(sink, Sink)
        sink.copy_range(src, 0, 1000)
        sink.copy_range(src, 1000, 150_000)
        sink.write(b"HEAD")
        sink.copy_range(src, 5, 10)
        sink.write(b"TAIL")
        assert not target.exists()
        assert sink.commit() == str(target)
    assert target.read_bytes() == data[:150_000] + b"HEAD" + data[5:10] + b"TAIL"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.tar.gz"]
    sink.abort()  # no-op after commit
    assert target.exists()


def test_sink_reset_and_replace_existing(tmp_path: Path, source_file: Path) -> None:
    target = tmp_path / "model.tar.gz"
    target.write_bytes(b"old output")
    with LocalFileSource(source_file) as src:
        sink = LocalFileSink(target)
        sink.copy_range(src, 0, 5000)
        sink.write(b"x" * 100)
        sink.reset()
        sink.write(b"new")
        sink.commit()
    assert target.read_bytes() == b"new"


def test_abort_leaves_nothing(tmp_path: Path, source_file: Path) -> None:
    target = tmp_path / "out" / "model.tar.gz"
    with LocalFileSource(source_file) as src:
        sink = LocalFileSink(target)
        sink.copy_range(src, 0, 100_000)
        sink.write(b"partial")
        sink.abort()
        sink.abort()
    assert not target.parent.exists()  # the directory the sink made went with it
    (tmp_path / "given").mkdir()
    with LocalFileSource(source_file) as src:
        sink = LocalFileSink(tmp_path / "given" / "model.tar.gz")
        sink.copy_range(src, 0, 100_000)
        sink.abort()
    assert list((tmp_path / "given").iterdir()) == []  # a directory that was there stays, empty


def test_unwritable_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        with pytest.raises(RuntimeIOError):
            LocalFileSink(blocker / "model.tar.gz")
    else:  # pragma: no cover - depends on the user running the tests
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(RuntimeIOError):
            LocalFileSink(ro / "model.tar.gz")


def test_permission_denied_says_who_owns_the_directory_and_who_we_are(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The non-root image in a SageMaker job, whose output directory is root-owned (tests/container runs it for real:
    root bypasses permissions, so here the open is refused by a stub)."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o755)
    real_open = os.open

    def refuse(path, flags, *args):  # noqa: ANN001, ANN202
        if str(path).startswith(str(out)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(path, flags, *args)

    monkeypatch.setattr(local_file.os, "open", refuse)
    with pytest.raises(RuntimeIOError) as info:
        LocalFileSink(out / "model.tar.gz")
    assert str(info.value) == (f"cannot write to the output directory {out}: Permission denied (owned by uid "
                               f"{os.getuid()}, mode 0755; this process runs as uid {os.geteuid()})")


def test_disk_full_is_a_runtime_error_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "in.tar.gz"
    archive.write_bytes(make_model_archive())
    target = tmp_path / "out" / "model.tar.gz"

    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(local_file.os, "pwrite", full)
    monkeypatch.setattr(local_file.os, "copy_file_range", full)
    with LocalFileSource(archive) as src:
        sink = LocalFileSink(target)
        with pytest.raises(RuntimeIOError, match="no space left"):
            try:
                repack_archive(src, sink, b"{}")
                sink.commit()
            except BaseException:
                sink.abort()
                raise
    assert not target.parent.exists()  # nothing left: not the temp file, not the directory the sink made


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        calls.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(local_file.os, "fsync", fsync)
    monkeypatch.setattr(local_file.os, "fdatasync", fdatasync)
    return calls


@pytest.mark.parametrize("durable", [False, True], ids=["default", "durable"])
def test_fsync_only_when_durable(tmp_path: Path, source_file: Path, monkeypatch: pytest.MonkeyPatch,
                                 durable: bool) -> None:
    """By default the output is published by rename without fsync (as cp and gzip do); ``durable`` fsyncs the
    file before the rename and the directory after it, and flushes copied bytes behind the copy."""
    monkeypatch.setattr(local_file, "FLUSH_STEP", 100_000)
    calls = _count_fsyncs(monkeypatch)
    target = tmp_path / "out" / "model.tar.gz"
    with LocalFileSource(source_file) as src:
        sink = LocalFileSink(target, durable=durable)
        for start in range(0, 250_000, 100_000):
            sink.copy_range(src, start, min(start + 100_000, 250_000))
        sink.write(b"tail")
        sink.commit()
    assert target.read_bytes() == source_file.read_bytes()[:250_000] + b"tail"
    # durable: 2 flush-behind fdatasyncs (every 100,000 copied bytes), the file, the directory
    assert len(calls) == (4 if durable else 0)


def test_interrupted_as_the_temp_file_is_made_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (console.Interrupted) right as the temp file is created: nobody holds the sink yet to abort it."""
    real_open = os.open

    class Signalled(BaseException):
        pass

    def open_then_signalled(path, flags, mode=0o777, **kwargs):  # noqa: ANN001, ANN003, ANN202
        os.close(real_open(path, flags, mode, **kwargs))
        raise Signalled

    monkeypatch.setattr(os, "open", open_then_signalled)
    with pytest.raises(Signalled):
        LocalFileSink(tmp_path / "made" / "model.tar.gz")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # neither the temp file nor the directory the sink made
