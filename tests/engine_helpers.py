"""Helpers for engine tests: run repack on bytes, read tar members, a ByteSource without a local path."""

from __future__ import annotations

import io
import logging
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from dummy_training.ends.local_file import LocalFileSink, LocalFileSource
from dummy_training.engine.archive import EngineResult, repack_archive
from dummy_training.engine.deflate_blocks import BlockInflater


class RemoteLikeSource:
    """Wraps a LocalFileSource but hides its local path, forcing the generic (S3-style) scanner."""

    def __init__(self, inner: LocalFileSource) -> None:
        self._inner = inner
        self.size = inner.size
        self.location = "remote:" + inner.location

    @property
    def local_path(self) -> str | None:
        return None

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return self._inner.chunks(start, end, chunk_size)

    def pread(self, offset: int, length: int) -> bytes:
        return self._inner.pread(offset, length)

    def provenance(self) -> Mapping[str, str]:
        return {}

    def close(self) -> None:
        self._inner.close()


def repack_bytes(data: bytes, tmp_path: Path, hyperparameters: bytes | None, *, generic: bool = False,
                 mtime: float | None = 1_700_000_100) -> tuple[EngineResult, Path]:
    """Repack ``data`` into ``tmp_path/out/model.tar.gz`` (committed; aborted on error and re-raised)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    src_path = tmp_path / "input.tar.gz"
    src_path.write_bytes(data)
    out = tmp_path / "out" / "model.tar.gz"
    source = LocalFileSource(src_path)
    sink = LocalFileSink(out)
    try:
        result = repack_archive(RemoteLikeSource(source) if generic else source, sink, hyperparameters, mtime=mtime)
        sink.commit()
        return result, out
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()


def members(data: bytes) -> list[tuple]:
    """(name, type, mode, mtime, linkname, uid, gid, content) of every member, as Python's tarfile reads them."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for m in tf:
            content = tf.extractfile(m).read() if m.isreg() else None
            out.append((m.name, m.type, m.mode, m.mtime, m.linkname, m.uid, m.gid, content))
    return out


def gnu_tools_accept(path: Path) -> list[str]:
    """Runs gzip -t and tar -tzf; returns the names tar lists."""
    subprocess.run(["gzip", "-t", str(path)], check=True, capture_output=True)
    listing = subprocess.run(["tar", "-tzf", str(path)], check=True, capture_output=True, text=True)
    return listing.stdout.splitlines()


class LogLines(logging.Handler):
    """Collects log messages (the ``logged`` fixture in conftest attaches one to the engine's logger)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def block_boundaries(stream: bytes) -> list[tuple[int, int]]:
    """(bit offset, uncompressed offset) of every non-final deflate block boundary in a raw stream."""
    found = []
    u = 0
    with BlockInflater(out_size=1 << 16) as inflater:
        inflater.feed(stream)
        while not inflater.finished:
            u += len(inflater.step())
            if inflater.at_boundary and not inflater.finished:
                found.append((inflater.boundary_bit(len(stream) - inflater.avail_in), u))
    return found
