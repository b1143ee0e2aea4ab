"""CRC-32 combination, the glue bits, and the spliced tail decoding as a valid deflate continuation."""

from __future__ import annotations

import os
import random
import struct
import zlib

import pytest
from engine_helpers import block_boundaries
from hypothesis import given, settings
from hypothesis import strategies as st
from isal.isal_zlib import crc32_combine

from dummy_training.engine.gzip_scan import SplicePoint
from dummy_training.engine.splice import build_tail, end_of_archive, glue, tar_member


@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=2000), b=st.binary(max_size=2000))
def test_crc32_combine_matches_crc_of_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_crc32_combine_long_length() -> None:
    a, b = os.urandom(100), bytes(5_000_000)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("nbits", range(8))
def test_glue_keeps_bits_and_closes_with_empty_stored_block(nbits: int) -> None:
    out = glue(0xFF, nbits)
    assert out[0] == (0xFF & ((1 << nbits) - 1))
    assert out.endswith(b"\x00\x00\xff\xff")
    assert len(out) == (6 if nbits + 3 > 8 else 5)


def test_splicing_at_every_block_boundary_gives_a_valid_stream() -> None:
    rng = random.Random(1)
    data = b"".join(rng.choice([rng.randbytes(700), b"text text text " * 40, bytes(900)]) for _ in range(150))
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 1)  # memLevel 1: small blocks, many boundaries
    stream = c.compress(data) + c.flush()
    points = block_boundaries(stream)
    assert len({bit % 8 for bit, _ in points}) == 8, "want boundaries at several bit offsets"
    for bit, u in points:
        point = SplicePoint(bit, u, zlib.crc32(data[:u]), 0, data[max(0, u - 32768) : u])
        original = data[u : u + 5000]
        appended = b"appended member bytes" * 7
        pieces = list(build_tail(point, stream[bit // 8] if bit % 8 else 0, iter([original]), appended))
        spliced = stream[: bit // 8] + b"".join(pieces[:-1])
        expected = data[:u] + original + appended
        assert zlib.decompress(spliced, -15) == expected
        assert pieces[-1] == struct.pack("<II", zlib.crc32(expected), len(expected))


def test_end_of_archive_pads_to_a_record() -> None:
    for offset in (0, 512, 10240 - 1024, 10240, 123 * 512):
        eoa = end_of_archive(offset)
        assert len(eoa) >= 1024 and not any(eoa)
        assert (offset + len(eoa)) % 10240 == 0


def test_tar_member_is_a_regular_root_file() -> None:
    import io
    import tarfile

    data = b'{"a": 1}'
    tar = tar_member(data, mtime=1_000_000) + end_of_archive(512 + 512)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        (m,) = tf.getmembers()
        assert (m.name, m.mode, m.uid, m.gid, m.mtime, m.isreg()) == ("hyperparameters.json", 0o644, 0, 0,
                                                                      1_000_000, True)
        assert tf.extractfile(m).read() == data
