"""Builders for test archives, shared by every test module (engine, CLI, S3, pipelines).

- ``make_model_archive(...) -> bytes``: a small model-like ``.tar.gz`` (or plain tar), with or without a root
  ``hyperparameters.json``, in any tar format and with any compressor from ``COMPRESSORS``.
- ``build_tar(entries, fmt)``: a tar from ``Entry`` values (files, dirs, symlinks, hard links, devices, ...);
  ``old_gnu_sparse(tar, header)`` turns one of its members into an old-GNU sparse member.
- ``COMPRESSORS``: name -> ``bytes -> bytes`` (python gzip levels 1-9, isal, zlib-ng, multi-member, sync and
  full flushes).
- ``SPECIAL_ARCHIVES``: valid edge cases (0 members, end marker in the first deflate block, PAX, GNU long
  names, non-ASCII names, links inside, nested ``model/hyperparameters.json``, ``./hyperparameters.json``).
- ``HOSTILE_ARCHIVES``: name -> ``() -> bytes`` for every input the engine must reject with exit 2.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import tarfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from isal import isal_zlib
from zlib_ng import zlib_ng

MTIME = 1_700_000_000
HYPERPARAMETERS = {"epochs": 3, "learning_rate": 0.001, "model": "dummy"}
HYPERPARAMETERS_BYTES = json.dumps(HYPERPARAMETERS).encode()


@dataclass
class Entry:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    mtime: int = MTIME
    devmajor: int = 0
    devminor: int = 0


def file(name: str, data: bytes, mode: int = 0o644, mtime: int = MTIME) -> Entry:
    return Entry(name, tarfile.REGTYPE, data, mode=mode, mtime=mtime)


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, linkname=target)


def build_tar(entries: Sequence[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.mtime = e.mtime
            info.uid, info.gid, info.uname, info.gname = 1000, 1000, "user", "user"
            info.linkname = e.linkname
            info.devmajor, info.devminor = e.devmajor, e.devminor
            if e.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(e.data)
                tf.addfile(info, io.BytesIO(e.data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def old_gnu_sparse(tar: bytes, header: int) -> bytes:
    """``tar`` (GNU format) with the regular member whose header is at offset ``header`` turned into an old-GNU
    sparse member with a single data chunk holding all its data (the engine re-encodes such archives)."""
    out = bytearray(tar)
    size = int(out[header + 124 : header + 136].split(b"\0", 1)[0] or b"0", 8)
    out[header + 156] = ord("S")
    out[header + 386 : header + 386 + 24] = b"%011o\0%011o\0" % (0, size)
    out[header + 483 : header + 495] = b"%011o\0" % size
    out[header + 148 : header + 156] = b" " * 8
    out[header + 148 : header + 155] = b"%06o\0" % sum(out[header : header + 512])
    return bytes(out)


# ------------------------------------------------------------------------------------ compressors
def gzip_level(level: int) -> Callable[[bytes], bytes]:
    return lambda data: gzip.compress(data, compresslevel=level, mtime=0)


def _raw_gzip(compressobj_factory: Callable[[], object]) -> Callable[[bytes], bytes]:
    def compress(data: bytes) -> bytes:
        c = compressobj_factory()
        return c.compress(data) + c.flush()  # type: ignore[attr-defined]

    return compress


def multi_member(parts: int) -> Callable[[bytes], bytes]:
    def compress(data: bytes) -> bytes:
        step = max(1, len(data) // parts)
        pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
        return b"".join(gzip.compress(p, compresslevel=6, mtime=0) for p in pieces)

    return compress


def flushing(mode: int, every: int = 7000) -> Callable[[bytes], bytes]:
    def compress(data: bytes) -> bytes:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        out = []
        for i in range(0, len(data), every):
            out.append(c.compress(data[i : i + every]))
            out.append(c.flush(mode))
        out.append(c.flush())
        return b"".join(out)

    return compress


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    **{f"gzip-{lvl}": gzip_level(lvl) for lvl in range(1, 10)},
    **{f"isal-{n}": _raw_gzip(lambda n=n: isal_zlib.compressobj(n, isal_zlib.DEFLATED, 31)) for n in range(4)},
    **{f"zlib-ng-{n}": _raw_gzip(lambda n=n: zlib_ng.compressobj(n, zlib_ng.DEFLATED, 31)) for n in (1, 6, 9)},
    "multi-member-2": multi_member(2),
    "multi-member-5": multi_member(5),
    "sync-flush": flushing(zlib.Z_SYNC_FLUSH),
    "full-flush": flushing(zlib.Z_FULL_FLUSH),
    "stored": gzip_level(0),
}


# ----------------------------------------------------------------------------------- model archives
def model_entries(*, seed: int = 0, weights_size: int = 200_000, small_files: int = 5, prefix: str = "./",
                  root_hyperparameters: bytes | None = None) -> list[Entry]:
    """Entries of a small model: weights, config, tokenizer, code, a symlink and a hard link inside."""
    rng = random.Random(seed)
    weights = bytes(rng.getrandbits(8) if i % 2 else rng.getrandbits(4) for i in range(weights_size))
    entries = [
        directory(prefix + "model" if prefix else "model"),
        file(f"{prefix}model/weights.bin", weights),
        file(f"{prefix}config.json", json.dumps({"hidden": 16, "layers": 2}).encode()),
        file(f"{prefix}tokenizer.json", json.dumps({f"w{i}": i for i in range(300)}).encode()),
        directory(f"{prefix}code"),
        file(f"{prefix}code/inference.py", b"def model_fn(model_dir):\n    return None\n", mode=0o755),
        symlink(f"{prefix}model/latest.bin", "weights.bin"),
        hardlink(f"{prefix}model/weights-copy.bin", f"{prefix}model/weights.bin"),
    ]
    for i in range(small_files):
        entries.append(file(f"{prefix}assets/file_{i:03d}.txt", f"asset {i} ".encode() * rng.randint(1, 50)))
    if root_hyperparameters is not None:
        entries.insert(3, file(f"{prefix}hyperparameters.json", root_hyperparameters))
    return entries


def make_model_archive(
    *,
    with_hyperparameters: bool = False,
    hyperparameters: bytes = HYPERPARAMETERS_BYTES,
    compressor: str | None = "gzip-6",
    fmt: int = tarfile.PAX_FORMAT,
    seed: int = 0,
    weights_size: int = 200_000,
    small_files: int = 5,
    prefix: str = "./",
    extra: Sequence[Entry] = (),
) -> bytes:
    """A model ``.tar.gz`` (``compressor=None``: plain tar)."""
    entries = model_entries(seed=seed, weights_size=weights_size, small_files=small_files, prefix=prefix,
                            root_hyperparameters=hyperparameters if with_hyperparameters else None)
    tar = build_tar([*entries, *extra], fmt)
    return tar if compressor is None else COMPRESSORS[compressor](tar)


def gz(tar: bytes) -> bytes:
    return gzip.compress(tar, compresslevel=6, mtime=0)


def _pax_long_names() -> bytes:
    long_dir = "/".join([f"very-long-directory-name-{i:02d}" for i in range(8)])
    return gz(build_tar([file(f"{long_dir}/weights.bin", os.urandom(3000)),
                         symlink(f"{long_dir}/link", "weights.bin"),
                         file("ünïcödé/名前.json", b"{}")], tarfile.PAX_FORMAT))


def _gnu_long_names() -> bytes:
    long_dir = "/".join([f"gnu-long-directory-name-{i:02d}" for i in range(8)])
    target = "/".join([f"t{i:02d}-long-target-component" for i in range(6)])
    return gz(build_tar([file(f"{long_dir}/weights.bin", os.urandom(3000)),
                         directory(target.rsplit("/", 1)[0]),
                         symlink(f"{long_dir}/link", "weights.bin"),
                         hardlink("hard", f"{long_dir}/weights.bin"),
                         file("ünïcödé.txt", b"x" * 100)], tarfile.GNU_FORMAT))


def _end_marker_in_first_block() -> bytes:
    return gz(build_tar([file("a.txt", b"tiny")], tarfile.USTAR_FORMAT))


SPECIAL_ARCHIVES: dict[str, Callable[[], bytes]] = {
    "zero-members": lambda: gz(build_tar([])),
    "zero-members-plain": lambda: build_tar([]),
    "end-marker-in-first-deflate-block": _end_marker_in_first_block,
    "pax-long-names": _pax_long_names,
    "gnu-long-names": _gnu_long_names,
    "ustar": lambda: make_model_archive(fmt=tarfile.USTAR_FORMAT),
    "no-dot-prefix": lambda: make_model_archive(prefix=""),
    "nested-hyperparameters-only": lambda: make_model_archive(
        extra=[file("model/hyperparameters.json", b'{"nested": true}')]),
    "plain-tar": lambda: make_model_archive(compressor=None),
    "multi-member": lambda: make_model_archive(compressor="multi-member-5"),
    "symlink-up-inside": lambda: gz(build_tar([directory("a"), directory("a/b"), file("top.txt", b"t"),
                                              symlink("a/b/up", "../../top.txt")])),
}


# ------------------------------------------------------------------------------------ hostile inputs
def _hostile(*entries: Entry, fmt: int = tarfile.PAX_FORMAT) -> Callable[[], bytes]:
    return lambda: gz(build_tar([file("ok.txt", b"fine"), *entries, file("after.txt", b"after")], fmt))


def _bad_checksum() -> bytes:
    tar = bytearray(build_tar([file("a.txt", b"a"), file("b.txt", b"b")], tarfile.USTAR_FORMAT))
    tar[1024 + 10] ^= 0x20  # a byte of the second member's name
    return gz(bytes(tar))


def _truncated_tar() -> bytes:
    tar = build_tar([file("a.bin", os.urandom(5000))], tarfile.USTAR_FORMAT)
    return gz(tar[:2048])


def _truncated_gzip() -> bytes:
    data = make_model_archive()
    return data[: len(data) // 2]


def _bad_crc() -> bytes:
    data = bytearray(make_model_archive())
    data[-8] ^= 1
    return bytes(data)


def _bad_length() -> bytes:
    data = bytearray(make_model_archive())
    data[-4] ^= 1
    return bytes(data)


def _corrupt_deflate() -> bytes:
    data = bytearray(make_model_archive(compressor="gzip-6"))
    for i in range(200, 260):
        data[i] ^= 0xA5
    return bytes(data)


def _trailing_garbage() -> bytes:
    return make_model_archive() + b"this is not gzip data"


def _device(kind: bytes) -> Callable[[], bytes]:
    return _hostile(Entry("dev/thing", kind, devmajor=1, devminor=3))


HOSTILE_ARCHIVES: dict[str, Callable[[], bytes]] = {
    "absolute-path": _hostile(file("/etc/evil", b"x")),
    "dotdot-path": _hostile(file("../evil", b"x")),
    "dotdot-nested": _hostile(file("model/../../evil", b"x")),
    "dotdot-pax-path": _hostile(file("model/" + "d" * 120 + "/../../../evil", b"x")),
    "dotdot-gnu-long-name": _hostile(file("model/" + "g" * 120 + "/../../../evil", b"x"), fmt=tarfile.GNU_FORMAT),
    "symlink-absolute": _hostile(symlink("link", "/etc/passwd")),
    "symlink-escapes": _hostile(symlink("model/link", "../../etc/passwd")),
    "symlink-escapes-from-root": _hostile(symlink("link", "../outside")),
    "symlink-dotdot-after-name": _hostile(directory("d"), symlink("d/sub", ".."), symlink("d/x", "sub/..")),
    "write-through-symlink": _hostile(symlink("out", "model"), file("out/evil", b"x")),
    "hardlink-absolute": _hostile(hardlink("hard", "/etc/passwd")),
    "hardlink-escapes": _hostile(hardlink("hard", "../etc/passwd")),
    "char-device": _device(tarfile.CHRTYPE),
    "block-device": _device(tarfile.BLKTYPE),
    "fifo": _hostile(Entry("pipe", tarfile.FIFOTYPE)),
    "bad-header-checksum": _bad_checksum,
    "truncated-tar": _truncated_tar,
    "truncated-gzip": _truncated_gzip,
    "gzip-bad-crc": _bad_crc,
    "gzip-bad-length": _bad_length,
    "corrupt-deflate": _corrupt_deflate,
    "trailing-garbage": _trailing_garbage,
    "not-an-archive": lambda: b"hello, this is a text file, not an archive\n" * 40,
    "empty-file": lambda: b"",
    "gzip-of-text": lambda: gz(b"just some text, not a tar\n" * 100),
    "root-hyperparameters-not-json": _hostile(file("hyperparameters.json", b"{not json")),
    "root-hyperparameters-array": _hostile(file("./hyperparameters.json", b"[1, 2]")),
    "root-hyperparameters-directory": _hostile(directory("hyperparameters.json")),
    "root-hyperparameters-symlink": _hostile(symlink("hyperparameters.json", "ok.txt")),
    "plain-tar-absolute-path": lambda: build_tar([file("/abs", b"x")]),
}
