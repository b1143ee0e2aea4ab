"""Raw-deflate inflation that stops at every deflate block boundary (``inflate(Z_BLOCK)`` through ctypes).

No Python binding exposes ``Z_BLOCK``, ``inflatePrime`` or the ``data_type`` bits that say where a block
ended, so this module binds them with ctypes: preferably on the zlib-ng copy inside the ``zlib_ng`` wheel
(``zng_*`` native API, same on every platform the wheel exists for), else on the system libz.

``BlockInflater.step()`` inflates until the next block boundary (or until its output buffer is full, or the
input runs out) and reports where it stopped: ``at_boundary`` is true just after a non-final block, and
``boundary_bit(consumed_offset)`` gives the exact bit offset in the compressed input where the next block
begins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from dataclasses import dataclass

from dummy_training.errors import InvalidInputError

Z_OK, Z_STREAM_END, Z_NEED_DICT, Z_BUF_ERROR = 0, 1, 2, -5
Z_BLOCK = 5
WINDOW = 32768


class _ZStream(ctypes.Structure):
    """zlib's z_stream (also zlib-ng's zng_stream up to ``data_type`` on 64-bit little-endian)."""

    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_size_t),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_size_t),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


@dataclass(frozen=True)
class _Lib:
    name: str
    init_raw: Callable[[ctypes._Pointer], int]  # type: ignore[name-defined]
    inflate: Callable[..., int]
    reset: Callable[..., int]
    end: Callable[..., int]
    prime: Callable[..., int]
    set_dictionary: Callable[..., int]


def _bind(lib: ctypes.CDLL, prefix: str) -> tuple:
    p = ctypes.POINTER(_ZStream)
    fns = []
    for name, args in (
        ("inflate", [p, ctypes.c_int]),
        ("inflateReset", [p]),
        ("inflateEnd", [p]),
        ("inflatePrime", [p, ctypes.c_int, ctypes.c_int]),
        ("inflateSetDictionary", [p, ctypes.c_char_p, ctypes.c_uint]),
    ):
        fn = getattr(lib, prefix + name)
        fn.argtypes = args
        fn.restype = ctypes.c_int
        fns.append(fn)
    return tuple(fns)


@functools.cache
def load_library() -> _Lib:
    """The zlib-ng shared object from the ``zlib_ng`` wheel, else the system libz."""
    try:
        import zlib_ng.zlib_ng as zng_module

        lib = ctypes.CDLL(zng_module.__file__)
        init2 = lib.zng_inflateInit2
        init2.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
        init2.restype = ctypes.c_int
        return _Lib("zlib-ng", lambda s: init2(s, -15), *_bind(lib, "zng_"))
    except (ImportError, OSError, AttributeError):  # pragma: no cover - depends on the installation
        pass
    lib = ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1")  # pragma: no cover
    lib.zlibVersion.restype = ctypes.c_char_p  # pragma: no cover
    version = lib.zlibVersion()  # pragma: no cover
    init2_ = lib.inflateInit2_  # pragma: no cover
    init2_.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_char_p, ctypes.c_int]  # pragma: no cover
    return _Lib(  # pragma: no cover
        "zlib", lambda s: init2_(s, -15, version, ctypes.sizeof(_ZStream)), *_bind(lib, "")
    )


class BlockInflater:
    """A raw-deflate inflater driven one block at a time. Feed ``bytes`` with ``feed``; call ``step``."""

    def __init__(self, out_size: int = 1 << 20) -> None:
        self._lib = load_library()
        self._strm = _ZStream()
        self._ref = ctypes.byref(self._strm)
        if self._lib.init_raw(self._ref) != Z_OK:
            raise MemoryError("inflateInit2 failed")
        self._out = ctypes.create_string_buffer(out_size)
        self._out_addr = ctypes.addressof(self._out)
        self._out_view = memoryview(self._out).cast("B")
        self._out_size = out_size
        self._in: bytes = b""
        self.finished = False  # the final block of the deflate stream ended

    def close(self) -> None:
        if self._ref is not None:
            self._lib.end(self._ref)
            self._ref = None  # type: ignore[assignment]

    def __enter__(self) -> BlockInflater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Start a new raw deflate stream (keeps any unconsumed input)."""
        self._lib.reset(self._ref)
        self.finished = False

    def prime(self, bits: int, value: int) -> None:
        if bits and self._lib.prime(self._ref, bits, value) != Z_OK:
            raise RuntimeError("inflatePrime failed")

    def set_dictionary(self, dictionary: bytes) -> None:
        if dictionary and self._lib.set_dictionary(self._ref, dictionary, len(dictionary)) != Z_OK:
            raise RuntimeError("inflateSetDictionary failed")

    def feed(self, data: bytes) -> None:
        """Replace the (fully consumed) input with ``data``."""
        if not isinstance(data, bytes):
            data = bytes(data)
        self._in = data
        self._strm.next_in = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
        self._strm.avail_in = len(data)

    @property
    def avail_in(self) -> int:
        return self._strm.avail_in

    @property
    def at_boundary(self) -> bool:
        """Just after the end of a non-final deflate block."""
        return (self._strm.data_type & 0xC0) == 0x80

    def boundary_bit(self, consumed_offset: int) -> int:
        """Bit offset of the next block, given the input offset just past the last consumed byte."""
        return consumed_offset * 8 - (self._strm.data_type & 7)

    def step(self) -> memoryview:
        """Inflate up to the next block boundary; returns the output (valid until the next call)."""
        strm = self._strm
        strm.next_out = self._out_addr
        strm.avail_out = self._out_size
        ret = self._lib.inflate(self._ref, Z_BLOCK)
        if ret == Z_STREAM_END:
            self.finished = True
        elif ret not in (Z_OK, Z_BUF_ERROR):
            msg = strm.msg.decode("ascii", "replace") if strm.msg else f"error {ret}"
            raise InvalidInputError(f"corrupt gzip data: {msg}")
        return self._out_view[: self._out_size - strm.avail_out]
