"""The pigz-style parallel deflater: a valid stream whatever the chunking and thread count, the same bytes for
any thread count, a block boundary at every chunk, errors from the producer propagate, and an archive written
as one deflate block (the whole model is the splice's tail) is repacked through it."""

from __future__ import annotations

import concurrent.futures as cf
import random
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from archives import make_model_archive
from engine_helpers import LogLines, block_boundaries, members, repack_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from zlib_ng import zlib_ng

from dummy_training.contract import ROOT_HYPERPARAMETERS_NAMES
from dummy_training.ends.local_file import LocalFileSource
from dummy_training.engine import archive as engine
from dummy_training.engine.gzip_scan import scan_gzip
from dummy_training.engine.parallel_deflate import FINAL_BLOCK, DeflateStream


def _inflate(stream: bytes, dictionary: bytes = b"") -> bytes:
    d = zlib.decompressobj(-15, zdict=dictionary) if dictionary else zlib.decompressobj(-15)
    out = d.decompress(stream) + d.flush()
    assert d.eof and not d.unused_data, "the stream must end with a final block and nothing after it"
    return out


def _data(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    numbers = b"".join(b"%d," % rng.randrange(99) for _ in range(300))
    parts = [rng.randbytes(900), b"weights " * 200, bytes(1500), numbers]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(parts)
    return bytes(out[:size])


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 300_000), chunk=st.sampled_from([1000, 4096, 32768, 100_000]),
       dict_size=st.sampled_from([0, 10, 32768, 50_000]), pieces=st.integers(1, 7), seed=st.integers(0, 9))
def test_stream_inflates_to_the_input_for_any_chunking(size: int, chunk: int, dict_size: int, pieces: int,
                                                      seed: int) -> None:
    data = _data(seed, size + dict_size)
    dictionary, body = data[:dict_size], data[dict_size:]
    cut = sorted(random.Random(seed).sample(range(len(body) + 1), min(pieces, len(body) + 1)))
    split = [body[a:b] for a, b in zip([0, *cut], [*cut, len(body)], strict=True)]
    deflated = DeflateStream(iter(split), dictionary=dictionary, chunk_size=chunk, threads=3)
    stream = b"".join(deflated)
    assert _inflate(stream, dictionary[-32768:]) == body
    assert (deflated.crc, deflated.size) == (zlib.crc32(body), len(body))


def test_thread_count_does_not_change_the_bytes() -> None:
    data = _data(1, 700_000)
    outputs = {n: b"".join(DeflateStream([data], dictionary=b"previous bytes", chunk_size=65536, threads=n))
               for n in (1, 2, 4)}
    assert outputs[1] == outputs[2] == outputs[4]
    assert _inflate(outputs[1], b"previous bytes") == data


def test_empty_input_is_just_the_final_block() -> None:
    stream = b"".join(DeflateStream([], threads=2))
    assert stream == FINAL_BLOCK
    assert _inflate(stream) == b""


def test_every_chunk_ends_on_a_block_boundary() -> None:
    data = _data(2, 10 * 65536)
    stream = b"".join(DeflateStream([data], chunk_size=65536, threads=2))
    boundaries = {u for _, u in block_boundaries(stream)}
    assert {k * 65536 for k in range(1, 11)} <= boundaries


def test_an_error_in_the_producer_propagates_and_stops_the_workers() -> None:
    def pieces() -> Iterator[bytes]:
        yield _data(3, 300_000)
        raise RuntimeError("the source went away")

    before = {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="went away"):
        for _ in DeflateStream(pieces(), chunk_size=50_000, threads=2):
            pass
    assert not [t for t in threading.enumerate() if t.name.startswith("deflate") and t.name not in before]


def test_an_abandoned_stream_stops_its_workers() -> None:
    stream = iter(DeflateStream([_data(4, 400_000)], chunk_size=20_000, threads=2))
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("deflate")]


def _one_block_gzip(tar: bytes) -> bytes:
    c = zlib_ng.compressobj(1, zlib_ng.DEFLATED, 31)  # zlib-ng level 1 writes the whole stream as one block
    return c.compress(tar) + c.flush()


@pytest.mark.parametrize("generic", [False, True], ids=["parallel-scan", "generic-scan"])
def test_an_archive_written_as_one_deflate_block_is_injected(tmp_path: Path, generic: bool,
                                                            monkeypatch: pytest.MonkeyPatch, logged: LogLines) -> None:
    monkeypatch.setattr(engine, "LONG_TAIL", 1 << 20)
    tar = make_model_archive(weights_size=3_000_000, small_files=40, compressor=None)
    data = _one_block_gzip(tar)
    hp = b'{"epochs": "3"}'
    result, out = repack_bytes(data, tmp_path, hp, generic=generic)
    assert "very long deflate blocks" in logged.text
    assert (result.method, result.kept_prefix) == ("splice", 10)  # no boundary before the end: all re-deflated
    got = members(out.read_bytes())
    assert got[:-1] == members(data)
    assert got[-1][0] in ROOT_HYPERPARAMETERS_NAMES and got[-1][-1] == hp
    # the re-deflated output has block boundaries all along, so a later splice of it keeps almost everything
    with LocalFileSource(out) as source:
        scan = scan_gzip(source)
    assert scan.point is not None and scan.tar.end is not None
    assert scan.tar.end - scan.point.u < 2 << 20


def test_a_single_chunk_starts_no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    real = cf.ThreadPoolExecutor
    monkeypatch.setattr(cf, "ThreadPoolExecutor", lambda *a, **k: started.append(1) or real(*a, **k))
    data = _data(5, 50_000)
    assert _inflate(b"".join(DeflateStream([data], chunk_size=65536, threads=4))) == data
    assert started == []
    assert _inflate(b"".join(DeflateStream([data, data], chunk_size=65536, threads=4))) == data + data
    assert started == [1]
