"""TarScanner: incremental feeding, formats, member list bounds, root hyperparameters.json detection."""

from __future__ import annotations

import tarfile

import pytest
from archives import SPECIAL_ARCHIVES, Entry, build_tar, directory, file, hardlink, symlink

from dummy_training.engine.tar_scan import MAX_LISTED_MEMBERS, TarScanner
from dummy_training.errors import InvalidInputError


def scan(tar: bytes, piece: int | None = None) -> TarScanner:
    scanner = TarScanner()
    if piece is None:
        scanner.feed(tar)
    else:
        for i in range(0, len(tar), piece):
            scanner.feed(tar[i : i + piece])
    scanner.finish()
    return scanner


ENTRIES = [
    directory("model"),
    file("model/weights.bin", bytes(range(256)) * 40),
    file("x" * 150 + "/long.txt", b"long"),
    symlink("model/link", "weights.bin"),
    hardlink("model/hard", "model/weights.bin"),
    file("ünïcödé/名前.json", b"{}"),
    file("empty", b""),
]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("piece", [None, 1, 7, 511, 512, 513, 4096])
def test_members_and_end_whatever_the_feeding(fmt: int, piece: int | None) -> None:
    tar = build_tar(ENTRIES, fmt)
    s = scan(tar, piece)
    with tarfile.open(fileobj=__import__("io").BytesIO(tar)) as tf:
        expected = [(m.name, m.size if m.isreg() else 0) for m in tf]
        end = tf.offset
    assert [(m.name.rstrip("/"), m.size if m.type == "file" else 0) for m in s.members] == expected
    assert [m.type for m in s.members] == ["dir", "file", "file", "symlink", "hardlink", "file", "file"]
    assert s.member_count == len(ENTRIES)
    assert s.total_size == sum(len(e.data) for e in ENTRIES)
    assert s.end == end
    assert not s.has_root_hyperparameters


def test_ustar_prefix_is_joined() -> None:
    name = "p" * 90 + "/" + "n" * 90
    s = scan(build_tar([file(name, b"x")], tarfile.USTAR_FORMAT))
    assert s.members[0].name == name


def test_pax_size_record_overrides_header_size() -> None:
    tar = bytearray(build_tar([Entry("big", data=b"y" * 700)], tarfile.PAX_FORMAT))
    # A hand-made PAX header carrying "size" (as writers do for members >= 8 GiB)
    pax = build_pax({"size": "700"})
    header = tar[:512]
    header[124:136] = b"%011o\0" % 0
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % sum(header)
    s = scan(pax + bytes(header) + tar[512:])
    assert s.members[0].size == 700
    assert s.end == len(pax) + 512 + 1024


def build_pax(records: dict[str, str], typ: bytes = b"x") -> bytes:
    body = b""
    for key, value in records.items():
        rec = f" {key}={value}\n".encode()
        n = len(rec) + 1
        while len(str(n)) + len(rec) != n:
            n += 1
        body += str(n).encode() + rec
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = typ
    info.size = len(body)
    return info.tobuf(tarfile.USTAR_FORMAT) + body + bytes(-len(body) % 512)


def test_global_pax_path_is_refused() -> None:
    """A global ``path`` renames every later member for tarfile and GNU tar (not for bsdtar): refused outright."""
    tar = build_pax({"path": "../escape"}, typ=b"g") + build_tar([file("innocent", b"x")], tarfile.USTAR_FORMAT)
    with pytest.raises(InvalidInputError, match="global PAX header .* sets 'path'"):
        scan(tar)


def test_member_list_is_bounded_but_counted() -> None:
    entries = [file(f"f{i}", b"") for i in range(MAX_LISTED_MEMBERS + 50)]
    s = scan(build_tar(entries, tarfile.USTAR_FORMAT))
    assert len(s.members) == MAX_LISTED_MEMBERS
    assert s.member_count == MAX_LISTED_MEMBERS + 50


@pytest.mark.parametrize("name", ["hyperparameters.json", "./hyperparameters.json"])
def test_root_hyperparameters_detected_and_collected(name: str) -> None:
    s = scan(build_tar([file("a", b"a"), file(name, b'{"x": 1}'), file("z", b"z")]))
    assert s.has_root_hyperparameters
    assert s.root_hyperparameters == b'{"x": 1}'
    assert s.member_count == 3  # the scan went on to validate the rest


@pytest.mark.parametrize("name", ["model/hyperparameters.json", "hyperparameters.json.bak", "x/./hyperparameters.json"])
def test_other_hyperparameters_names_do_not_count(name: str) -> None:
    assert not scan(build_tar([file(name, b"{}")])).has_root_hyperparameters


def test_link_targets_inside_are_accepted() -> None:
    s = scan(build_tar([directory("a"), directory("a/b"), symlink("a/b/up", "../../top"), symlink("a/l", "b/c/d"),
                        symlink("dot", "."), hardlink("h", "a/b/up")]))
    assert s.member_count == 6


def test_truncation_inside_header_and_data() -> None:
    tar = build_tar([file("a.bin", b"a" * 2000)], tarfile.USTAR_FORMAT)
    for cut in (100, 600, 2000):
        s = TarScanner()
        s.feed(tar[:cut])
        with pytest.raises(InvalidInputError, match="truncated"):
            s.finish()


def test_missing_end_marker_is_accepted_at_a_member_boundary() -> None:
    tar = build_tar([file("a", b"a")], tarfile.USTAR_FORMAT)[:1024]
    s = scan(tar)
    assert s.end == 1024 and s.member_count == 1


def test_empty_stream_is_invalid() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        scan(b"")


def test_committed_never_passes_a_partial_header() -> None:
    tar = build_tar([file("a", b"a" * 100)], tarfile.USTAR_FORMAT)
    s = TarScanner()
    s.feed(tar[:1100])
    assert s.committed == 1024  # 76 bytes of what may be the end marker are held back
    s.feed(tar[1100:])
    assert s.committed == s.end == 1024


def test_trailing_data_after_end_marker_is_noted() -> None:
    s = scan(build_tar([file("a", b"a")], tarfile.USTAR_FORMAT) + b"junk")
    assert s.trailing_data


def test_special_zero_member_plain_tar() -> None:
    s = scan(SPECIAL_ARCHIVES["zero-members-plain"]())
    assert (s.member_count, s.end) == (0, 0)
