"""A ByteSource as a seekable, read-ahead binary file object: how rapidgzip reads an S3 object.

rapidgzip decompresses in parallel from a path or from any Python file object. ``SourceFile`` serves its
reads from the source's own ordered read-ahead (``source.chunks``: for S3, ranged GETs in flight), keeps the
last few blocks for the small backward seeks rapidgzip makes between neighbouring chunks, and reads anything
older again with one ranged read. Memory: ``keep`` blocks plus the source's read-ahead.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator

from dummy_training.ends.base import ByteSource


class SourceFile(io.RawIOBase):
    def __init__(self, source: ByteSource, block: int, keep: int = 3) -> None:
        super().__init__()
        self._source = source
        self._size = source.size
        self._block = block
        self._keep = max(1, keep)
        self._stream: Iterator[bytes] = source.chunks(0, None, block)  # pieces of exactly `block` (last shorter)
        self._streamed = 0  # blocks taken from the stream so far
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self._lock = threading.Lock()
        self.rereads = 0  # blocks read again because they had left the cache

    # ------------------------------------------------------------------------------ io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        with self._lock:
            base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
            if base + offset < 0:
                raise ValueError("negative seek position")
            self._pos = base + offset
            return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._lock:
            if self._pos >= self._size or not len(buffer):
                return 0
            index, offset = divmod(self._pos, self._block)
            data = self._block_at(index)
            n = min(len(buffer), len(data) - offset)
            memoryview(buffer).cast("B")[:n] = memoryview(data)[offset : offset + n]
            self._pos += n
            return n

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()  # cancels the source's outstanding reads
        self._cache.clear()
        super().close()

    # ------------------------------------------------------------------------------ internals
    def _block_at(self, index: int) -> bytes:
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        if index >= self._streamed:  # ahead: take the stream up to it (sequential, read-ahead in flight)
            data = b""
            while self._streamed <= index:
                data = next(self._stream)
                self._remember(self._streamed, data)
                self._streamed += 1
            return data
        self.rereads += 1
        start = index * self._block
        data = self._source.pread(start, min(self._block, self._size - start))
        self._remember(index, data)
        return data

    def _remember(self, index: int, data: bytes) -> None:
        self._cache[index] = data
        self._cache.move_to_end(index)
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)
