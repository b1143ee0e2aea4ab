"""The simple, obviously-correct path: decompress, pass the tar bytes through, compress everything again.

Used for inputs the splice cannot take (plain uncompressed tar, old GNU sparse members). The tar stream up to
its end-of-archive marker is re-validated with the same ``TarScanner`` on the way through, the appended bytes
(new member + end-of-archive) follow, and the result is compressed with isal on a thread pool
(``parallel_deflate``) into ``sink.write()``. The output is always a single-member gzip. Memory is bounded
by the chunk size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from isal import isal_zlib

from dummy_training.ends.base import ByteSource, Sink
from dummy_training.engine.gzip_scan import GZIP_MAGIC
from dummy_training.engine.parallel_deflate import DeflateStream
from dummy_training.engine.tar_scan import TarScanner
from dummy_training.errors import InvalidInputError

CHUNK = 1 << 20


def gunzip_chunks(source: ByteSource) -> Iterator[bytes]:
    """Decompressed bytes of every gzip member of ``source`` (CRC and length are checked by isal).

    Stops at the first byte after a member that does not start another member (zero padding: the scan has
    already judged what follows the last member).
    """
    decompressor = isal_zlib.decompressobj(31)
    for chunk in source.chunks(0, None, CHUNK):
        data = chunk
        while data:
            if decompressor.eof:
                if data[:1] != GZIP_MAGIC[:1]:
                    return
                decompressor = isal_zlib.decompressobj(31)
            out = decompressor.decompress(data, CHUNK)
            if out:
                yield out
            while decompressor.unconsumed_tail:
                out = decompressor.decompress(decompressor.unconsumed_tail, CHUNK)
                if out:
                    yield out
            data = decompressor.unused_data if decompressor.eof else b""


GZIP_HEADER = GZIP_MAGIC + b"\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, no mtime, OS unknown


def reencode(
    source: ByteSource,
    sink: Sink,
    *,
    compressed: bool,
    end: int | None,
    appended: bytes,
    on_progress: Callable[[int], None] | None = None,
    threads: int = 1,
) -> int:
    """Write gzip(tar[0:end] + appended) to ``sink`` (``end=None``: the whole decompressed input), compressed
    on ``threads`` threads (see parallel_deflate).

    Returns the number of uncompressed bytes taken from the input.
    """
    tar = TarScanner()
    taken = 0

    def validated() -> Iterator[bytes]:
        nonlocal taken
        pieces = gunzip_chunks(source) if compressed else source.chunks(0, None, CHUNK)
        for piece in pieces:
            if end is not None and taken + len(piece) > end:
                piece = piece[: end - taken]
            tar.feed(piece)
            taken += len(piece)
            yield piece
            if on_progress is not None:
                on_progress(taken)
            if end is not None and taken >= end:
                break
        if end is not None and taken != end:
            raise InvalidInputError("the input changed while it was being read (tar stream ended early)")
        if end is not None and tar.end not in (None, end):
            raise InvalidInputError("the input changed while it was being read (tar end moved)")
        yield appended

    sink.write(GZIP_HEADER)
    stream = DeflateStream(validated(), threads=threads)
    for out in stream:
        sink.write(out)
    sink.write(struct.pack("<II", stream.crc, stream.size & 0xFFFFFFFF))
    return taken
