"""SourceFile: a ByteSource as the seekable file object rapidgzip reads (S3 objects in the parallel scan)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from engine_helpers import RemoteLikeSource

from dummy_training.ends.local_file import LocalFileSource
from dummy_training.ends.seekable import SourceFile

BLOCK = 4096


@pytest.fixture
def data_and_file(tmp_path: Path):  # noqa: ANN201
    data = os.urandom(10 * BLOCK + 123)
    path = tmp_path / "obj.bin"
    path.write_bytes(data)
    src = LocalFileSource(path)
    counting = _Counting(RemoteLikeSource(src))
    yield data, SourceFile(counting, BLOCK, keep=2), counting  # type: ignore[arg-type]
    src.close()


class _Counting:
    """Counts the source's reads: the streamed ones and the ranged re-reads."""

    def __init__(self, inner: RemoteLikeSource) -> None:
        self.inner = inner
        self.size = inner.size
        self.location = inner.location
        self.local_path = None
        self.streamed = 0
        self.preads = 0

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20):  # noqa: ANN201
        for piece in self.inner.chunks(start, end, chunk_size):
            self.streamed += 1
            yield piece

    def pread(self, offset: int, length: int) -> bytes:
        self.preads += 1
        return self.inner.pread(offset, length)


def test_sequential_reads_stream_each_block_once(data_and_file) -> None:  # noqa: ANN001
    data, f, counting = data_and_file
    got = io.BufferedReader(f, buffer_size=1000).read()
    assert got == data
    assert counting.streamed == 11 and counting.preads == 0
    assert f.read(10) == b""  # at the end


def test_seeks_within_and_behind_the_kept_window(data_and_file) -> None:  # noqa: ANN001
    data, f, counting = data_and_file
    f.seek(5 * BLOCK + 7)
    assert f.read(100) == data[5 * BLOCK + 7 : 5 * BLOCK + 107]
    assert counting.streamed == 6  # streamed up to block 5
    f.seek(4 * BLOCK)  # still kept: no read
    assert f.read(BLOCK) == data[4 * BLOCK : 5 * BLOCK]
    assert counting.preads == 0
    f.seek(1)  # block 0 has left the window: one ranged re-read
    assert f.read(50) == data[1:51]
    assert counting.preads == 1 and f.rereads == 1
    assert f.seek(-3, os.SEEK_END) == len(data) - 3
    assert f.read() == data[-3:]
    assert f.seek(0, os.SEEK_CUR) == f.tell() == len(data)
    with pytest.raises(ValueError):
        f.seek(-1)


def test_reads_never_cross_a_block_and_fill_views(data_and_file) -> None:  # noqa: ANN001
    data, f, _ = data_and_file
    f.seek(BLOCK - 10)
    buf = bytearray(100)
    assert f.readinto(buf) == 10  # up to the block end; the caller asks again
    assert bytes(buf[:10]) == data[BLOCK - 10 : BLOCK]
    view = memoryview(bytearray(64)).cast("B")
    assert f.readinto(view) == 64 and bytes(view) == data[BLOCK : BLOCK + 64]
