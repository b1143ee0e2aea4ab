"""Raw deflate on several threads, the way pigz does it, with isal's compressor.

The input is cut into ``chunk_size`` chunks. Each chunk is compressed on its own, with the 32 KiB of input
before it as the dictionary, and ended with a sync flush (an empty stored block that leaves the stream
byte-aligned), so the compressed chunks concatenate into one valid deflate stream; an empty final block
(``FINAL_BLOCK``) ends it. isal releases the GIL while it compresses, so chunks are compressed in parallel on a
small thread pool while the caller produces the next ones (e.g. inflating the original), and memory stays
bounded by ``chunk_size`` times the chunks in flight.

isal level 1 compresses at 500-600 MB/s per core on model weights (zlib level 6: about 32 MB/s) with the same
size on that data; a splice re-deflates only a small tail, but an archive whose last deflate block spans most
of it (zlib-ng level 1 and isal level 0 write one block for the whole stream) has a tail the size of the model.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from collections.abc import Iterable, Iterator

from isal import isal_zlib
from isal.isal_zlib import crc32

from dummy_training.engine.deflate_blocks import WINDOW

LEVEL = 1  # isal levels are 0-3; 1 is the fast one and still shrinks typical model data
CHUNK = 1 << 20
#: An empty final block with fixed Huffman codes (BFINAL=1, BTYPE=01, end-of-block), after a byte-aligned end.
FINAL_BLOCK = b"\x03\x00"


def deflate_chunk(data: bytes, dictionary: bytes = b"", level: int = LEVEL) -> bytes:
    """Raw deflate of ``data`` primed with ``dictionary``, ended with a sync flush (not final, byte-aligned)."""
    if dictionary:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, isal_zlib.DEF_MEM_LEVEL,
                                           isal_zlib.Z_DEFAULT_STRATEGY, dictionary[-WINDOW:])
    else:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)


def _rechunk(pieces: Iterable[bytes], chunk_size: int) -> Iterator[bytes]:
    buf = bytearray()
    for piece in pieces:
        if not buf and len(piece) == chunk_size:
            yield bytes(piece)
            continue
        buf += piece
        while len(buf) >= chunk_size:
            yield bytes(buf[:chunk_size])
            del buf[:chunk_size]
    if buf:
        yield bytes(buf)


class DeflateStream:
    """A complete raw deflate stream of the concatenated ``pieces``, continuing after ``dictionary``.

    Iterate it for the compressed bytes, in order; afterwards ``crc`` (CRC-32) and ``size`` describe the
    uncompressed input, as a gzip trailer needs them. ``threads`` > 1 compresses up to ``threads + 1`` chunks
    at once; the pool only starts once a second chunk exists, so a small input costs one call on this thread.
    """

    def __init__(self, pieces: Iterable[bytes], *, dictionary: bytes = b"", level: int = LEVEL,
                 chunk_size: int = CHUNK, threads: int = 1) -> None:
        self._pieces = pieces
        self._dictionary = dictionary[-WINDOW:]
        self._level = level
        self._chunk_size = chunk_size
        self._threads = threads
        self.crc = 0
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        level, threads = self._level, self._threads
        previous = self._dictionary
        pool: cf.ThreadPoolExecutor | None = None
        pending: collections.deque[cf.Future[bytes]] = collections.deque()
        first: tuple[bytes, bytes] | None = None  # held until a second chunk shows the pool is worth starting
        try:
            for chunk in _rechunk(self._pieces, self._chunk_size):
                self.crc = crc32(chunk, self.crc)
                self.size += len(chunk)
                if threads <= 1:
                    yield deflate_chunk(chunk, previous, level)
                elif pool is None and first is None:
                    first = (chunk, previous)
                else:
                    if pool is None:
                        assert first is not None
                        pool = cf.ThreadPoolExecutor(threads, thread_name_prefix="deflate")
                        pending.append(pool.submit(deflate_chunk, *first, level))
                        first = None
                    pending.append(pool.submit(deflate_chunk, chunk, previous, level))
                    while len(pending) > threads:
                        yield pending.popleft().result()
                previous = chunk[-WINDOW:] if len(chunk) >= WINDOW else (previous + chunk)[-WINDOW:]
            if first is not None:
                yield deflate_chunk(*first, level)
            while pending:
                yield pending.popleft().result()
            yield FINAL_BLOCK
        finally:
            for future in pending:
                future.cancel()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

