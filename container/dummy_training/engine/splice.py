"""Build the re-encoded tail of a spliced gzip'd tar.

The output of a splice is::

    input[0 : point.bit // 8]                       copied verbatim (never decompressed or recompressed)
    glue                                            the last partial byte + an empty stored block
    deflate(original[point.u : end] + appended)     a fresh raw deflate stream primed with the 32 KiB window
    CRC-32 + ISIZE                                  the gzip trailer of the member holding the point

where ``appended`` is the new tar member plus the end-of-archive blocks padded to a 10240-byte record. The
glue keeps the ``bit % 8`` low bits of the byte holding the end of the previous block and closes it with an
empty non-final stored block (3 zero header bits, padding to the byte, LEN=0, NLEN=0xFFFF), so the new deflate
blocks start byte-aligned.

The tail is usually one deflate block (tens of KiB to a few MiB), but an archive written as a single block
(zlib-ng level 1, isal level 0) has a tail the size of the model, so it is compressed with isal on a thread
pool (``parallel_deflate``) while the caller inflates the original.
"""

from __future__ import annotations

import itertools
import struct
import tarfile
from collections.abc import Iterable, Iterator, Mapping

from isal.isal_zlib import crc32_combine

from dummy_training.contract import HYPERPARAMETERS_FILENAME
from dummy_training.engine.gzip_scan import SplicePoint
from dummy_training.engine.parallel_deflate import DeflateStream
from dummy_training.engine.tar_scan import BLOCK, GLOBAL_OVERRIDDEN, RECORD

#: The largest mtime a ustar header holds (11 octal digits: the year 2242).
MAX_USTAR_MTIME = 8**11 - 1


def injected_pax(overrides: Mapping[str, str], *, mtime: int) -> dict[str, str]:
    """The PAX records that make the injected member read as promised after the archive's global PAX headers
    (which tarfile and GNU tar apply to every later member, ours included): each global keyword we promise a
    value for, set back to it. Empty when no global header set one, so the member stays a plain ustar header.
    (A global ``path`` is refused by the scanner, so the member's name needs no record.)"""
    promised = {"uid": "0", "gid": "0", "uname": "", "gname": "", "mtime": str(mtime), "atime": str(mtime),
                "ctime": str(mtime)}
    assert set(promised) == set(GLOBAL_OVERRIDDEN)
    return {key: promised[key] for key in sorted(overrides) if key in promised}


def tar_member(data: bytes, *, mtime: int, name: str = HYPERPARAMETERS_FILENAME,
               overrides: Mapping[str, str] | None = None) -> bytes:
    """A regular-file tar member with its data padded to 512 bytes: one ustar header (no PAX or GNU header, so
    no atime/ctime), mode 0644, owner 0:0 with no user or group name, and the given mtime. The same arguments
    give the same bytes. ``overrides``: the archive's global PAX records; a keyword among them that would change
    what the member reads as (owner, names, times) is set back by a PAX header of the member's own."""
    records = injected_pax(overrides or {}, mtime=int(mtime))
    # tarfile names the PAX header ././@PaxHeader with mode 0644, owner 0:0, mtime 0: nothing from the clock
    head = (tarfile.TarInfo._create_pax_generic_header(records, tarfile.XHDTYPE, "utf-8")  # type: ignore[attr-defined]
            if records else b"")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(mtime)
    info.type = tarfile.REGTYPE
    return head + info.tobuf(format=tarfile.USTAR_FORMAT) + data + bytes(-len(data) % BLOCK)


def end_of_archive(offset: int) -> bytes:
    """Two zero blocks, then zeros up to the next 10240-byte record boundary, for an archive at ``offset``."""
    return bytes(2 * BLOCK + (-(offset + 2 * BLOCK) % RECORD))


def glue(last_byte: int, nbits: int) -> bytes:
    """Close the partial byte holding ``nbits`` bits of the previous block with an empty stored block."""
    if nbits == 0:
        head = b"\x00"  # 3 header bits + 5 padding bits
    else:
        head = bytes([last_byte & ((1 << nbits) - 1)])
        if nbits + 3 > 8:
            head += b"\x00"
    return head + b"\x00\x00\xff\xff"


def build_tail(point: SplicePoint, last_byte: int, original: Iterable[bytes], appended: bytes,
               threads: int = 1) -> Iterator[bytes]:
    """Yield the bytes that follow ``input[0 : point.bit // 8]`` in the spliced output.

    ``last_byte`` is ``input[point.bit // 8]`` (ignored when the point is byte-aligned); ``original`` yields
    the original uncompressed bytes ``[point.u, end)``; ``threads`` compress the tail (see parallel_deflate).
    """
    yield glue(last_byte, point.bit % 8)
    stream = DeflateStream(itertools.chain(original, (appended,)), dictionary=point.dictionary, threads=threads)
    yield from stream
    member_crc = crc32_combine(point.crc, stream.crc, stream.size)
    member_size = point.u - point.member_u + stream.size
    yield struct.pack("<II", member_crc, member_size & 0xFFFFFFFF)
