"""Incremental tar header walker over a decompressed byte stream, with the engine's safety validation.

``TarScanner.feed()`` takes the tar stream in pieces of any size (it keeps at most one partial 512-byte header
and the small metadata members: GNU long names, PAX records, the root ``hyperparameters.json``), so memory is
bounded whatever the archive holds. It understands ustar (with ``prefix``), GNU long name/link (``L``/``K``),
PAX extended and global headers (``path``, ``linkpath``, ``size``), and old GNU sparse members (extension
blocks are walked; ``old_gnu_sparse`` is set so the engine can choose the re-encoding path).

Validation raises ``InvalidInputError`` with one line naming the member: bad header checksum, absolute path,
a ``..`` component, a symlink whose target leaves the archive root (or is absolute), a hard link whose target
is absolute or escapes, a member written through a symlink, a device or fifo, a truncated archive, and a root
``hyperparameters.json`` that is not a regular file holding a JSON object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dummy_training.contract import ROOT_HYPERPARAMETERS_NAMES
from dummy_training.errors import InvalidInputError
from dummy_training.hyperparameters import parse_hyperparameters

BLOCK = 512
_ZEROS = bytes(1 << 20)


def all_zero(data: bytes | bytearray | memoryview) -> bool:
    """True when every byte is 0; about 1 GB/s (``any()`` over bytes manages 120 MB/s, which made the zeros
    after a tar's end marker, or a gzip bomb of them, cost seconds per GB)."""
    mv = memoryview(data).cast("B")
    step = len(_ZEROS)
    for i in range(0, len(mv), step):
        piece = mv[i : i + step]
        if piece.tobytes() != _ZEROS[: len(piece)]:
            return False
    return True
RECORD = 10240
ZERO_BLOCK = bytes(BLOCK)
#: MemberInfo entries kept for logs; the rest are only counted.
MAX_LISTED_MEMBERS = 500
#: Largest root hyperparameters.json we accept (it is parsed in memory).
MAX_HYPERPARAMETERS_SIZE = 16 << 20
#: Largest GNU long-name/long-link or PAX header member.
MAX_META_SIZE = 8 << 20
#: Symlinks remembered to detect members written through them.
MAX_SYMLINKS = 200_000

_FILE_TYPES = {b"0": "file", b"\0": "file", b"7": "file", b"S": "file"}
_OTHER_TYPES = {b"5": "dir", b"2": "symlink", b"1": "hardlink"}
_FORBIDDEN_TYPES = {b"3": "character device", b"4": "block device", b"6": "fifo"}
#: Types whose size field does not announce data blocks (as Python's tarfile reads them).
_NO_DATA_TYPES = frozenset(b"123456")

_HEADER, _DATA, _SPARSE_EXT, _END = range(4)


@dataclass
class MemberInfo:
    name: str
    size: int
    type: str  # "file" | "dir" | "symlink" | "hardlink" | "other"


def _number(field: bytes, what: str, offset: int) -> int:
    """A numeric header field: NUL/space terminated octal, or GNU base-256."""
    if field and field[0] in (0x80, 0xFF):
        if field[0] == 0xFF:
            raise InvalidInputError(f"invalid tar header at offset {offset}: negative {what}")
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise InvalidInputError(f"invalid tar header at offset {offset}: bad {what} field") from None


def checksum_ok(block: bytes) -> bool:
    """The header checksum matches (unsigned or, as some old tars wrote it, signed byte sum)."""
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        return False
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    return stored == unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b > 127)



def _mtime(block: bytes, meta: dict[str, str]) -> int | None:
    """A member's mtime in whole seconds (a PAX ``mtime`` record wins over the header field); None when it is
    unreadable or before 1970. Never an error: tar readers do not judge an archive by its timestamps."""
    if "mtime" in meta:
        try:
            seconds = math.floor(float(meta["mtime"]))
            return seconds if seconds >= 0 else None
        except (ValueError, OverflowError):
            pass
    try:
        return _number(block[136:148], "mtime", 0)
    except InvalidInputError:  # negative (base-256) or not octal
        return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _parse_pax(data: bytes, offset: int) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding at the end of some writers' PAX data
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidInputError(f"malformed PAX header at offset {offset}") from None
        record = data[space + 1 : pos + length]
        if space < 0 or length <= 0 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise InvalidInputError(f"malformed PAX header at offset {offset}")
        key, _, value = record[:-1].partition(b"=")
        records[_text(key)] = _text(value)
        pos += length
    return records


def _parts(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


class TarScanner:
    """Walks tar headers as decompressed bytes arrive; see the module docstring."""

    def __init__(self) -> None:
        self.pos = 0  # bytes fed so far
        self.end: int | None = None  # offset of the end-of-archive marker (first zero block)
        self.member_count = 0
        self.total_size = 0  # sum of member data sizes
        self.members: list[MemberInfo] = []
        self.old_gnu_sparse = False
        self.has_root_hyperparameters = False
        self.root_hyperparameters: bytes | None = None  # content of the last regular root hyperparameters.json
        self.newest_mtime: int | None = None  # the largest member mtime (PAX ``mtime`` or header), whole seconds
        self.trailing_data = False  # non-zero bytes after the end-of-archive marker

        self._state = _HEADER
        self._header = bytearray()
        self._skip = 0  # bytes of member data (or extension blocks) still to pass
        self._collect: bytearray | None = None  # data of a metadata member being collected
        self._collect_size = 0
        self._collect_kind = b""  # b"L", b"K", b"x", b"g" or b"H" (root hyperparameters.json)
        self._current = ""  # name of the member whose data is being passed (for error messages)
        self._pending: dict[str, str] = {}  # from L/K/x headers, for the next member only
        self._global: dict[str, str] = {}  # from g headers, for every following member
        self._symlinks: set[str] = set()
        self._sparse_data = 0  # data size of an old GNU sparse member whose extension blocks are being read

    # ------------------------------------------------------------------------------------ feeding
    @property
    def committed(self) -> int:
        """Every tar byte before this offset lies before the end-of-archive marker."""
        if self._state == _END:
            assert self.end is not None
            return self.end
        return self.pos - len(self._header)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        mv = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        n = len(mv)
        i = 0
        while i < n:
            state = self._state
            if state == _END:
                if not self.trailing_data and not all_zero(mv[i:]):
                    self.trailing_data = True
                self.pos += n - i
                return
            if state in (_HEADER, _SPARSE_EXT):
                need = BLOCK - len(self._header)
                if need == BLOCK and n - i >= BLOCK:
                    block = bytes(mv[i : i + BLOCK])
                else:
                    k = min(need, n - i)
                    self._header += mv[i : i + k]
                    i += k
                    self.pos += k
                    if len(self._header) < BLOCK:
                        return
                    block = bytes(self._header)
                    self._header.clear()
                    self._on_block(block, self.pos - BLOCK)
                    continue
                i += BLOCK
                self.pos += BLOCK
                self._on_block(block, self.pos - BLOCK)
                continue
            # _DATA
            k = min(self._skip, n - i)
            if self._collect is not None:
                room = self._collect_size - len(self._collect)
                if room > 0:
                    self._collect += mv[i : i + min(k, room)]
            i += k
            self.pos += k
            self._skip -= k
            if self._skip == 0:
                self._data_done()

    def finish(self) -> None:
        """Call at the end of the stream: checks the archive is complete."""
        if self.end is not None:
            return
        if self.pos == 0:
            raise InvalidInputError("the archive is empty")
        if self._state == _HEADER and not self._header and not self._pending:
            self.end = self.pos  # no end-of-archive marker, but complete: accepted like tar and tarfile do
            self._state = _END
            return
        what = f"member {self._current!r}" if self._current else "a tar header"
        raise InvalidInputError(f"truncated archive: {what} is cut short at byte {self.pos}")

    # ------------------------------------------------------------------------------------ headers
    def _on_block(self, block: bytes, offset: int) -> None:
        if self._state == _SPARSE_EXT:
            self._on_sparse_extension(block)
            return
        if block == ZERO_BLOCK:
            self.end = offset
            self._state = _END
            return
        if not checksum_ok(block):
            if offset == 0:
                raise InvalidInputError("not a tar archive (bad tar header checksum at offset 0)")
            raise InvalidInputError(f"invalid archive: bad tar header checksum at offset {offset}")
        typ = block[156:157]
        size = _number(block[124:136], "size", offset)
        if typ in (b"L", b"K", b"x", b"g"):
            if size > MAX_META_SIZE:
                raise InvalidInputError(f"invalid archive: metadata header of {size} bytes at offset {offset}")
            self._current = ""
            self._start_data(size, collect=typ, collect_size=size)
            return
        self._on_member(block, typ, size, offset)

    def _on_member(self, block: bytes, typ: bytes, size: int, offset: int) -> None:
        meta = {**self._global, **self._pending}
        self._pending = {}
        if "path" in meta:
            name = meta["path"]
        else:
            raw = _cstring(block[0:100])
            if block[257:263] == b"ustar\x00":
                prefix = _cstring(block[345:500])
                if prefix:
                    raw = prefix + b"/" + raw
            name = _text(raw)
        name = meta.get("GNU.sparse.name", name)
        link = meta["linkpath"] if "linkpath" in meta else _text(_cstring(block[157:257]))
        if "size" in meta:
            try:
                size = int(meta["size"])
            except ValueError:
                raise InvalidInputError(f"invalid archive member {name!r}: bad PAX size") from None
        kind = _FILE_TYPES.get(typ) or _OTHER_TYPES.get(typ) or "other"
        self._current = name
        self._validate(name, typ, kind, link)

        self.member_count += 1
        mtime = _mtime(block, meta)
        if mtime is not None and (self.newest_mtime is None or mtime > self.newest_mtime):
            self.newest_mtime = mtime
        if kind == "file":
            self.total_size += size
        if len(self.members) < MAX_LISTED_MEMBERS:
            self.members.append(MemberInfo(name, size, kind))

        data = 0 if typ in _NO_DATA_TYPES else size
        collect = None
        if name.rstrip("/") in ROOT_HYPERPARAMETERS_NAMES:
            if kind != "file" or typ == b"S":
                raise InvalidInputError(f"invalid archive member {name!r}: the root hyperparameters.json is not a "
                                        "regular file")
            if size > MAX_HYPERPARAMETERS_SIZE:
                raise InvalidInputError(f"invalid archive member {name!r}: {size} bytes is too large for "
                                        "hyperparameters")
            self.has_root_hyperparameters = True
            collect = b"H"
        if typ == b"S":
            self.old_gnu_sparse = True
            if block[482]:  # extension blocks with more sparse entries follow the header
                self._state = _SPARSE_EXT
                self._sparse_data = data
                return
        self._start_data(data, collect=collect, collect_size=size)

    def _on_sparse_extension(self, block: bytes) -> None:
        if block[504]:
            return  # another extension block follows
        self._start_data(self._sparse_data, collect=None, collect_size=0)

    def _start_data(self, size: int, *, collect: bytes | None, collect_size: int) -> None:
        if collect is not None:
            self._collect = bytearray()
            self._collect_kind = collect
            self._collect_size = collect_size
        self._skip = (size + BLOCK - 1) // BLOCK * BLOCK
        self._state = _DATA
        if self._skip == 0:
            self._data_done()

    def _data_done(self) -> None:
        self._state = _HEADER
        if self._collect is None:
            return
        data = bytes(self._collect)
        kind = self._collect_kind
        self._collect = None
        if kind == b"L":
            self._pending["path"] = _text(_cstring(data))
        elif kind == b"K":
            self._pending["linkpath"] = _text(_cstring(data))
        elif kind == b"x":
            self._pending.update(_parse_pax(data, self.pos))
        elif kind == b"g":
            self._global.update(_parse_pax(data, self.pos))
        else:  # b"H": the root hyperparameters.json
            parse_hyperparameters(data, f"archive member {self._current!r}")
            self.root_hyperparameters = data

    # ---------------------------------------------------------------------------------- validation
    def _validate(self, name: str, typ: bytes, kind: str, link: str) -> None:
        def bad(reason: str) -> InvalidInputError:
            return InvalidInputError(f"invalid archive member {name!r}: {reason}")

        if not name or "\0" in name:
            raise bad("empty or malformed name")
        if typ in _FORBIDDEN_TYPES:
            raise bad(f"{_FORBIDDEN_TYPES[typ]} members are not allowed")
        if name.startswith("/"):
            raise bad("absolute path")
        if ".." in name.split("/"):
            raise bad("'..' path component")
        parts = _parts(name)
        if not parts and kind != "dir":
            raise bad("names the archive root")
        if self._symlinks:
            for depth in range(1, len(parts)):
                prefix = "/".join(parts[:depth])
                if prefix in self._symlinks:
                    raise bad(f"written through the symlink {prefix!r}")
        if kind == "symlink":
            self._check_symlink(parts, link, bad)
        elif kind == "hardlink":
            if not link or link.startswith("/"):
                raise bad(f"hard link target {link!r} is empty or absolute")
            if ".." in link.split("/"):
                raise bad(f"hard link target {link!r} leaves the archive")

    def _check_symlink(self, parts: list[str], link: str, bad) -> None:  # noqa: ANN001
        if not link:
            raise bad("empty symlink target")
        if link.startswith("/"):
            raise bad(f"symlink target {link!r} is absolute")
        target = _parts(link)
        ups = 0
        while ups < len(target) and target[ups] == "..":
            ups += 1
        if ".." in target[ups:]:
            raise bad(f"symlink target {link!r} has '..' after a directory name")
        if ups > len(parts) - 1:
            raise bad(f"symlink target {link!r} resolves outside the archive")
        if len(self._symlinks) >= MAX_SYMLINKS:
            raise bad(f"more than {MAX_SYMLINKS} symlinks")
        self._symlinks.add("/".join(parts))
