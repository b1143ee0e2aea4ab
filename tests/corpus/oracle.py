"""The differential oracle (issue 19): what the engine sees in an archive against what the readers see.

Member rows are ``Row(name, type, size, link, offset)`` in the engine's vocabulary, from
- the engine: ``TarScanner(max_listed=None)`` fed the decompressed tar stream in odd-sized pieces;
- Python's ``tarfile`` (``TarInfo.offset`` is the first header block of the member, extended headers included);
- libarchive (the ``libarchive-c`` binding over Debian's libarchive13; ``archive_read_header_position``).

Normalisation, the same on every side (``norm``): names and link targets as bytes (``os.fsencode``: a name that
is not UTF-8 compares by its bytes), empty and ``.`` components dropped wherever they are (repeated ``/``,
leading ``./`` runs, ``a/./b``, a trailing ``/`` or ``/.``), a leading ``/`` kept, and the root itself (``./``,
``.``) as ``.`` -- the path an extractor writes to. Symlink targets are compared as stored (an extractor
writes them verbatim); hard-link targets are normalised like names (an extractor resolves them like names).
Sizes are compared for regular files only (a sparse file's: its real size, as both readers give it); the size
field of a link or directory carries no data.

Where libarchive reads differently from tarfile without a difference for an extractor (``libarchive_as_engine``):
libarchive's header position of a member counts a global pax header (``g``) or a GNU volume label (``V``) just
before it as the member's own first header, and it lists no entry for a ``V`` label (tarfile lists it as a member
of an unknown type, and would extract it as a regular file).

Types: ``file`` (``0``, ``\\0``, ``7``, GNU sparse ``S``), ``dir`` (``5``; GNU dumpdir ``D``; a ``\\0``/``0`` entry
whose name ends in ``/``, as v7 and MirBSD pax write directories), ``symlink``, ``hardlink``, else ``other``.
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT_HP = b"hyperparameters.json"


@dataclass(frozen=True)
class Row:
    name: bytes
    type: str
    size: int | None
    link: bytes | None
    offset: int

    def __str__(self) -> str:
        link = f" -> {self.link!r}" if self.link is not None else ""
        size = "" if self.size is None else f" {self.size}"
        return f"@{self.offset} {self.type} {self.name!r}{size}{link}"


def norm(name: str | bytes | None) -> bytes:
    raw = os.fsencode(name or "")
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    out = (b"/" if raw.startswith(b"/") else b"") + b"/".join(parts)
    return out or b"."


def _row(name: str | bytes, kind: str, size: int | None, link: str | bytes | None, offset: int) -> Row:
    if kind == "symlink":
        link_b: bytes | None = os.fsencode(link or "")
    elif kind == "hardlink":
        link_b = norm(link)
    else:
        link_b = None
    return Row(norm(name), kind, size if kind == "file" else None, link_b, offset)


# ------------------------------------------------------------------------------------------- streams
def tar_stream(path: Path) -> bytes:
    """The decompressed tar stream (every gzip member, empty ones included)."""
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def gzip_members(data: bytes) -> int:
    """How many gzip members ``data`` holds (0: not gzip)."""
    count = 0
    while data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(31)
        d.decompress(data)
        count += 1
        data = d.unused_data
    return count


# ------------------------------------------------------------------------------------------- the engine
def engine_rows(tar: bytes, piece: int = 7919) -> list[Row]:
    """The engine's member list (raises InvalidInputError as the engine does)."""
    from dummy_training.engine.tar_scan import TarScanner

    scanner = TarScanner(max_listed=None)
    for i in range(0, len(tar), piece):
        scanner.feed(tar[i : i + piece])
    scanner.finish()
    return [_row(m.name, m.type, m.size, m.link, m.offset) for m in scanner.members]


def engine_root_hp(tar: bytes) -> bool:
    from dummy_training.engine.tar_scan import TarScanner

    scanner = TarScanner(max_listed=None)
    scanner.feed(tar)
    scanner.finish()
    return scanner.has_root_hyperparameters


# ------------------------------------------------------------------------------------------- tarfile
def _tarfile_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.isdir() or info.type == b"D" or (info.type in (b"0", b"\0") and info.name.endswith("/")):
        return "dir"
    if info.isreg():
        return "file"
    return "other"


def tarfile_infos(path_or_bytes: Path | bytes) -> list[tarfile.TarInfo]:
    import io

    fileobj = io.BytesIO(path_or_bytes if isinstance(path_or_bytes, bytes) else tar_stream(path_or_bytes))
    with tarfile.open(fileobj=fileobj, mode="r:") as tf:
        return tf.getmembers()


def tarfile_rows(path_or_bytes: Path | bytes) -> list[Row]:
    return [_row(i.name, _tarfile_kind(i), i.size, i.linkname, i.offset) for i in tarfile_infos(path_or_bytes)]


# ------------------------------------------------------------------------------------------- libarchive
def libarchive_entries(path: Path) -> list[dict]:
    """Every entry as libarchive reads it: a dict of the fields the oracle compares, and owner/mode/mtime."""
    try:
        import libarchive
        from libarchive import ffi
    except (ImportError, OSError) as exc:  # OSError: the binding is there, libarchive13 is not
        raise AssertionError(f"libarchive-c (pip, the [test] extra) over libarchive13 (Debian) is needed: {exc}"
                             ) from None
    position = ffi.libarchive.archive_read_header_position
    position.restype = ctypes.c_int64
    position.argtypes = [ctypes.c_void_p]
    out = []
    with libarchive.file_reader(str(path)) as archive:
        for entry in archive:
            if entry.islnk:
                kind = "hardlink"
            elif entry.issym:
                kind = "symlink"
            elif entry.isdir:
                kind = "dir"
            elif entry.isreg:
                kind = "file"
            else:
                kind = "other"
            raw_name = ffi.entry_pathname(entry._entry_p)  # bytes, as stored (no charset conversion)
            link = None
            if kind in ("symlink", "hardlink"):
                link = (ffi.entry_symlink(entry._entry_p) if kind == "symlink"
                        else ffi.entry_hardlink(entry._entry_p))
            out.append({"name": raw_name, "type": kind, "size": entry.size, "link": link,
                        "offset": position(archive._pointer),
                        "uid": entry.uid, "gid": entry.gid, "uname": entry.uname, "gname": entry.gname,
                        "mode": entry.mode, "mtime": entry.mtime})
    return out


def libarchive_rows(path: Path) -> list[Row]:
    return [_row(e["name"], e["type"], e["size"], e["link"], e["offset"]) for e in libarchive_entries(path)]


def _typeflag(tar: bytes, offset: int) -> bytes:
    return tar[offset + 156 : offset + 157]


def libarchive_as_engine(tar: bytes, engine: list[Row], lib: list[Row]) -> tuple[list[Row], list[Row]]:
    """(engine rows, libarchive rows) with the two documented libarchive differences taken out: no ``V`` label
    rows, and a header position at a ``g``/``V`` header right before the member moved to the member's own."""
    engine = [r for r in engine if not (r.type == "other" and _typeflag(tar, r.offset) == b"V")]
    fixed = []
    for i, row in enumerate(lib):
        if i < len(engine) and row.offset < engine[i].offset and _typeflag(tar, row.offset) in (b"g", b"V"):
            row = Row(row.name, row.type, row.size, row.link, engine[i].offset)
        fixed.append(row)
    return engine, fixed


def diff(label_a: str, a: list[Row], label_b: str, b: list[Row]) -> str:
    """'' when equal, else the first differences, readable."""
    if a == b:
        return ""
    lines = [f"{label_a} ({len(a)} members) != {label_b} ({len(b)} members):"]
    for i in range(max(len(a), len(b))):
        ra = a[i] if i < len(a) else None
        rb = b[i] if i < len(b) else None
        if ra != rb:
            lines.append(f"  #{i}: {label_a}: {ra}  |  {label_b}: {rb}")
        if len(lines) > 12:
            lines.append("  ...")
            break
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- extracted trees
def snapshot(root: Path) -> dict[bytes, tuple]:
    """Every path under ``root``: (kind, mode, content sha256 | link target, uid, gid, mtime, link group)."""
    out: dict[bytes, tuple] = {}
    inodes: dict[int, bytes] = {}
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, broot)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full), st.st_uid, st.st_gid)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                group = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else None
                out[rel] = ("file", stat.S_IMODE(st.st_mode), digest, st.st_uid, st.st_gid, int(st.st_mtime), group)
            else:
                out[rel] = ("other", st.st_mode)
    return out


def tree_diff(a: dict[bytes, tuple], b: dict[bytes, tuple]) -> list[str]:
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lines.append(f"  {key!r}: {a.get(key)} != {b.get(key)}")
    return lines[:12]
