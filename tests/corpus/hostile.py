"""Byte-patched archives (issue 19), built with tarfile and patched the way a hostile or an old writer would:
a size field on a header that carries no data, a hard-link target that climbs out, global pax headers, a
signed-byte checksum, Sun's ``X`` extended header, the root ``./`` as a non-directory type.

``HOSTILE``: id -> tar bytes that must be refused (exit 2, one line, no output).
``HIDDEN_HP``: id -> tar bytes that hide a root hyperparameters.json behind a sized hard link: must not be
injected (refused, or preserved byte for byte).
``LEGIT``: id -> tar bytes every reader reads: must repack (inject) and read back as promised.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

MTIME = 1_700_000_000
HP_MODEL = b'{"epochs": 99}'


def _info(name: str, type_: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mtime = type_, size, linkname, MTIME
    info.mode = 0o755 if type_ == tarfile.DIRTYPE else 0o644
    info.uid = info.gid = 1000
    info.uname = info.gname = "user"
    return info


def write_tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.USTAR_FORMAT,
              pax_headers: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_headers) as tf:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def member_offsets(tar: bytes) -> dict[str, int]:
    """name -> offset of the member's own header block (after any extended headers)."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        return {m.name: m.offset_data - 512 for m in tf.getmembers()}


def fix_checksum(tar: bytearray, offset: int, *, signed: bool = False) -> None:
    block = bytearray(tar[offset : offset + 512])
    block[148:156] = b" " * 8
    total = sum(b - 256 if signed and b > 127 else b for b in block)
    tar[offset + 148 : offset + 156] = b"%06o\0 " % total


def patch(tar: bytes, offset: int, *, size: int | None = None, typeflag: bytes | None = None,
          name: bytes | None = None) -> bytes:
    out = bytearray(tar)
    if size is not None:
        out[offset + 124 : offset + 136] = b"%011o\0" % size
    if typeflag is not None:
        out[offset + 156 : offset + 157] = typeflag
    if name is not None:
        out[offset : offset + 100] = name.ljust(100, b"\0")
    fix_checksum(out, offset)
    return bytes(out)


def _sized_hides(type_: bytes, hidden: str, hidden_data: bytes) -> bytes:
    """A type-``type_`` header whose size field covers the next member (its header and data): a reader that
    skips data after it never sees that member; tarfile, GNU tar and bsdtar read it."""
    link = "a.txt" if type_ in (tarfile.LNKTYPE, tarfile.SYMTYPE) else ""
    name = {tarfile.DIRTYPE: "sized-dir"}.get(type_, f"sized-{type_.decode()}")
    tar = write_tar([(_info("a.txt"), b"a\n"), (_info(name, type_, linkname=link), b""),
                     (_info(hidden), hidden_data), (_info("b.txt"), b"b\n")])
    hidden_blocks = 512 + (len(hidden_data) + 511) // 512 * 512
    return patch(tar, member_offsets(tar)[name.rstrip("/")], size=hidden_blocks)


def _hardlink_dotdot() -> bytes:
    return write_tar([(_info("model/a.txt"), b"a\n"),
                      (_info("model/passwd", tarfile.LNKTYPE, linkname="model/../../etc/passwd"), b"")])


def _global(records: dict[str, str]) -> bytes:
    return write_tar([(_info("model.bin"), b"\x00" * 3000), (_info("config.json"), b"{}\n")],
                     fmt=tarfile.PAX_FORMAT, pax_headers=records)


def _signed_checksum() -> bytes:
    name = "caf\udce9-\udcff.txt"  # bytes > 127 in the name: the signed sum differs from the unsigned one
    tar = write_tar([(_info(name), b"latin-1\n"), (_info("b.txt"), b"b\n")])
    out = bytearray(tar)
    fix_checksum(out, 0, signed=True)
    return bytes(out)


def _sun_x() -> bytes:
    """A pax ``x`` header retyped ``X`` (Sun tar): tarfile reads it as an extended header."""
    long_name = "model/" + "n" * 120 + ".bin"
    tar = write_tar([(_info("a.txt"), b"a\n"), (_info(long_name), b"long\n")], fmt=tarfile.PAX_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        x_offset = tf.getmember(long_name).offset
    assert tar[x_offset + 156 : x_offset + 157] == b"x"
    return patch(tar, x_offset, typeflag=b"X")


def _root_as(typeflag: bytes, data: bytes = b"") -> bytes:
    """The root ``./`` written as a ``typeflag`` entry (v7 ``\\0``, MirBSD pax ``0``, GNU dumpdir ``D``)."""
    root = _info("./", tarfile.DIRTYPE)
    tar = write_tar([(root, b""), (_info("./model.bin"), b"\x01" * 2000)])
    out = bytearray(patch(tar, 0, typeflag=typeflag, size=len(data)))
    if data:  # the dumpdir's data block goes in between (tar is rewritten: header, data, the rest)
        rest = out[512:]
        out = out[:512] + data.ljust(512, b"\0") + rest
    return bytes(out)


HOSTILE: dict[str, Callable[[], bytes]] = {
    **{f"sized-type-{t.decode()}-hides-escape": (lambda t=t: _sized_hides(t, "../escaped.txt", b"escaped\n"))
       for t in (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE,
                 tarfile.FIFOTYPE)},
    "hardlink-target-dotdot-after-dir": _hardlink_dotdot,
}
HIDDEN_HP: dict[str, Callable[[], bytes]] = {
    f"sized-type-{t.decode()}-hides-root-hp": (lambda t=t: _sized_hides(t, "hyperparameters.json", HP_MODEL))
    for t in (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.DIRTYPE)
}
LEGIT: dict[str, Callable[[], bytes]] = {
    "global-pax-owner": lambda: _global({"uname": "builder", "gname": "builder", "uid": "1234", "gid": "1234"}),
    "global-pax-mtime-mode": lambda: _global({"mtime": "1600000000.5", "comment": "built by ci"}),
    "signed-byte-checksum": _signed_checksum,
    "sun-X-extended-header": _sun_x,
    "root-dot-v7-areg": lambda: _root_as(tarfile.AREGTYPE),
    "root-dot-gnu-dumpdir": lambda: _root_as(b"D", b"Ymodel.bin\0\0"),
}
#: global pax ``path``: every later member, the injected one included, would be renamed by a reader applying it
GLOBAL_PATH: dict[str, Callable[[], bytes]] = {
    "global-pax-path": lambda: _global({"path": "renamed.txt"}),
    "global-pax-path-root-hp": lambda: _global({"path": "hyperparameters.json"}),
}
