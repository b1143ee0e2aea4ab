"""Coverage-guided fuzzer (atheris) for the tar and gzip scanners, with the corpus tier's differential oracle.

Run by hand (minutes; not in CI), see tests/fuzz/README.md:

    pip install atheris
    python tests/fuzz/fuzz_tar.py --seeds            # writes the seed corpus (tests/fuzz/seeds, small archives)
    python tests/fuzz/fuzz_tar.py tests/fuzz/work tests/fuzz/seeds -max_total_time=300 -max_len=65536

Each input's first byte picks a mode; the rest is

- 0 (tar): a tar stream, fed to ``TarScanner(max_listed=None)`` in pieces whose sizes come from the input;
- 1 (repack of a gzip'd tar): the tar stream gzip'd (one member, or split into two members with an empty one
  between), then the whole ``repack_archive`` on in-memory bytes;
- 2 (raw gzip): the bytes as they are, through the whole ``repack_archive`` (the gzip scanner's own parsing).

The oracle fails (raises ``Finding``: atheris stops and saves the input as ``crash-*``) when the engine

- raises anything but a ``DummyTrainingError`` (a crash; user errors are one line, exit 1-3);
- accepts a tar that tarfile reads to a different member list (normalised name, type, size of files, link
  target, header offset: tests/corpus/oracle.py), or in which tarfile sees a root hyperparameters.json the engine
  did not (or the other way round), or a member tarfile's ``data`` filter refuses (an absolute or escaping name
  or link, a device: the engine must have refused it);
- repacks an archive whose output tarfile does not read as the input's members plus exactly one root
  hyperparameters.json reading 0:0, no names, 0644, the reported mtime (injected), or that is not the input byte
  for byte (preserved).

Where tarfile itself cannot read the input (``tarfile.ReadError`` and friends) but the engine accepts it, that
is counted (``--stats``), not a finding: tarfile stops at the first bad header and extracts what came before.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the corpus package

HP_GIVEN = b'{"a": "1"}'
STATS: Counter[str] = Counter()


class Finding(AssertionError):
    pass


# ------------------------------------------------------------------------------------------- in-memory ends
class BytesSource:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.location = "memory"

    @property
    def local_path(self) -> str | None:
        return None

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        for i in range(start, end, chunk_size):
            yield self.data[i : min(i + chunk_size, end)]

    def pread(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def provenance(self) -> Mapping[str, str]:
        return {}

    def close(self) -> None:
        pass


class BytesSink:
    location = "memory-out"

    def __init__(self) -> None:
        self.buf = bytearray()

    def copy_range(self, source: BytesSource, start: int, end: int) -> None:
        self.buf += source.pread(start, end - start)

    def write(self, data: bytes) -> None:
        self.buf += data

    def reset(self) -> None:
        self.buf.clear()

    def commit(self, metadata: Mapping[str, str] | None = None) -> str:
        return self.location

    def abort(self) -> None:
        pass

    def stats(self) -> Mapping[str, int]:
        return {"bytes_written": len(self.buf), "bytes_copied": 0}


# ------------------------------------------------------------------------------------------- the oracle
def _tarfile_view(tar: bytes) -> list[tarfile.TarInfo] | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as tf:
            return tf.getmembers()
    except (tarfile.TarError, EOFError, ValueError, UnicodeError, OverflowError, OSError):
        return None


def _escapes(infos: list[tarfile.TarInfo]) -> str:
    dest = "/nonexistent-fuzz-dest"
    for info in infos:
        try:
            tarfile.data_filter(info, dest)
        except tarfile.SpecialFileError as exc:
            if info.isdev():  # a device or fifo (an unknown type, e.g. a GNU 'V' label, tarfile writes as a file)
                return f"{type(exc).__name__}: {exc}"
        except tarfile.FilterError as exc:
            return f"{type(exc).__name__}: {exc}"
        except (ValueError, OSError):  # NUL in a name and such: tarfile's extraction refuses it too
            continue
    return ""


def check_tar(tar: bytes, pieces: bytes = b"") -> None:
    """Scan ``tar`` with the engine and judge against tarfile (raises Finding)."""
    from corpus.oracle import ROOT_HP, _row, _tarfile_kind, diff, norm

    from dummy_training.engine.tar_scan import TarScanner
    from dummy_training.errors import DummyTrainingError

    scanner = TarScanner(max_listed=None)
    try:
        pos = 0
        k = 0
        while pos < len(tar):
            step = (pieces[k % len(pieces)] * 37 + 1) if pieces else 4096
            scanner.feed(tar[pos : pos + step])
            pos += step
            k += 1
        scanner.finish()
    except DummyTrainingError:
        STATS["tar refused"] += 1
        return
    except Exception as exc:  # noqa: BLE001 - the point: anything else is a crash
        raise Finding(f"TarScanner crashed: {type(exc).__name__}: {exc}") from exc
    STATS["tar accepted"] += 1
    infos = _tarfile_view(tar)
    if infos is None:
        STATS["tar accepted, tarfile cannot read"] += 1
        return
    engine = [_row(m.name, m.type, m.size, m.link, m.offset) for m in scanner.members]
    theirs = [_row(i.name, _tarfile_kind(i), i.size, i.linkname, i.offset) for i in infos]
    if len(engine) == len(theirs) and engine != theirs:
        # tarfile joins bytes 345..500 to the name as a ustar prefix whatever the magic (an old-GNU header's
        # atime field, or whatever a v7 header without magic holds there); GNU tar and libarchive only for POSIX
        # ustar: the engine lists their name and judges tarfile's too (root decision, escapes); compare the rest
        for k, (mine, info) in enumerate(zip(engine, infos, strict=True)):
            own = info.offset_data - 512
            prefix, raw_name = tar[own + 345 : own + 500].split(b"\0")[0], tar[own : own + 100].split(b"\0")[0]
            joined = norm(prefix + b"/" + raw_name)
            if (mine.name != theirs[k].name and tar[own + 257 : own + 263] != b"ustar\0" and tar[own + 345]
                    and theirs[k].name == joined):
                STATS["tarfile reads a non-POSIX header's bytes 345.. as a prefix"] += 1
                engine[k] = theirs[k].__class__(theirs[k].name, *list(mine.__dict__.values())[1:])
    if len(engine) == len(theirs) and all(
            a == b or (a.size != b.size and (a.name, a.type, a.link, a.offset) == (b.name, b.type, b.link, b.offset)
                       and b"S" in {tar[i.offset_data - 512 + 156 : i.offset_data - 512 + 157]})
            for a, b, i in zip(engine, theirs, infos, strict=True)) and engine != theirs:
        raise Finding("old GNU sparse size: " + diff("engine", engine, "tarfile", theirs))
    if len(theirs) < len(engine) and engine[: len(theirs)] == theirs:
        raise Finding(f"tarfile stops early (F3), after {len(theirs)} of the engine's {len(engine)} members: "
                      f"{engine[len(theirs)]}")
    if engine != theirs:
        # tarfile stops quietly at a header it cannot parse (after the first): the engine must have refused it
        raise Finding(diff("engine", engine, "tarfile", theirs))
    # a hard link extracts as a regular file (the engine recognises one to an earlier regular member)
    tarfile_hp = any(norm(i.name) == ROOT_HP and (i.isreg() or i.islnk()) for i in infos)
    if tarfile_hp != scanner.has_root_hyperparameters:
        raise Finding(f"root hyperparameters.json: tarfile {tarfile_hp}, engine {scanner.has_root_hyperparameters}")
    escape = _escapes(infos)
    if escape:
        raise Finding(f"the engine accepted what tarfile's data filter refuses: {escape}")


def check_repack(data: bytes) -> None:
    """The whole repack on in-memory bytes (the single-thread scanner), judged by tarfile."""
    from dummy_training.engine.archive import repack_archive
    from dummy_training.errors import DummyTrainingError

    sink = BytesSink()
    try:
        result = repack_archive(BytesSource(data), sink, HP_GIVEN, mtime=1_700_000_000)
    except DummyTrainingError:
        STATS["repack refused"] += 1
        return
    except Exception as exc:  # noqa: BLE001
        raise Finding(f"repack crashed: {type(exc).__name__}: {exc}") from exc
    STATS[f"repack {result.decision}"] += 1
    out = bytes(sink.buf)
    try:
        tar_in = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as exc:
        raise Finding(f"the engine accepted a gzip stream Python's gzip refuses: {exc}") from None
    if result.decision == "preserved":
        if data[:2] == b"\x1f\x8b" and out != data:
            raise Finding("preserved, but the output is not the input")
        return
    try:
        tar_out = gzip.decompress(out)
    except (OSError, EOFError, zlib.error) as exc:
        raise Finding(f"the output is not a readable gzip: {exc}") from None
    before, after = _tarfile_view(tar_in), _tarfile_view(tar_out)
    if after is None:
        raise Finding("tarfile cannot read the output")
    if before is None:
        STATS["repack injected, tarfile cannot read the input"] += 1
        return
    names_before = [(i.name, i.type, i.size, i.linkname, i.offset) for i in before]
    names_after = [(i.name, i.type, i.size, i.linkname, i.offset) for i in after]
    if names_after[:-1] != names_before:
        raise Finding(f"the output's members are not the input's: {names_after[:-1][:5]} vs {names_before[:5]}")
    hp = after[-1]
    got = (hp.name, hp.uid, hp.gid, hp.uname, hp.gname, hp.mode, hp.mtime, hp.type, hp.size)
    want = ("hyperparameters.json", 0, 0, "", "", 0o644, result.mtime, tarfile.REGTYPE, len(HP_GIVEN))
    if got != want:
        raise Finding(f"tarfile reads the injected member as {got}, want {want}")
    from corpus.oracle import ROOT_HP, norm

    if any(norm(i.name) == ROOT_HP and (i.isreg() or i.islnk()) for i in before):
        raise Finding("injected, but tarfile sees a root hyperparameters.json in the input")


#: ``FUZZ_IGNORE="text|text"``: findings whose message contains one of these (known, already reported) are
#: counted and saved once under ``FUZZ_IGNORED_DIR`` (default ./ignored-findings) instead of stopping the run
IGNORE = [t for t in os.environ.get("FUZZ_IGNORE", "").split("|") if t]


def one_input(data: bytes) -> None:
    try:
        _one_input(data)
    except Finding as exc:
        known = next((t for t in IGNORE if t in str(exc)), None)
        if known is None:
            raise
        STATS[f"ignored: {known}"] += 1
        if STATS[f"ignored: {known}"] == 1:
            out = Path(os.environ.get("FUZZ_IGNORED_DIR", "ignored-findings"))
            out.mkdir(exist_ok=True)
            (out / f"ignored-{len(list(out.iterdir()))}").write_bytes(data)


def _one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        # the last 8 bytes: piece sizes
        check_tar(rest[:-8] if len(rest) > 8 else rest, rest[-8:] if len(rest) > 8 else b"")
    elif mode == 1:
        tar = rest
        check_tar(tar)
        if len(tar) > 1024 and data[0] % 2:
            cut = len(tar) // 3
            gz = _gz(tar[:cut]) + _gz(b"") + _gz(tar[cut:])
        else:
            gz = _gz(tar)
        check_repack(gz)
    else:
        check_repack(rest)


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


# ------------------------------------------------------------------------------------------- seeds
def write_seeds(dest: Path) -> int:
    """Small versions of every corpus case (the real writers; tools that are missing are passed over) and the
    byte-patched variants, as mode-0 (tar), mode-1 (gzip'd tar) and mode-2 (raw gzip) inputs."""
    import dataclasses
    import tempfile

    from corpus.hostile import GLOBAL_PATH, HIDDEN_HP, HOSTILE, LEGIT
    from corpus.writers import CASES, PYTHON_CASES, ToolMissing

    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for case in CASES + PYTHON_CASES:
        small = dataclasses.replace(case, tree=dataclasses.replace(case.tree, small=True))
        with tempfile.TemporaryDirectory() as work:
            try:
                path = small.build(Path(work))
            except (ToolMissing, AssertionError) as exc:
                print(f"seed {case.id}: {exc}", file=sys.stderr)
                continue
            data = path.read_bytes()
        tar = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        (dest / f"{case.id}.tar").write_bytes(b"\x00" + tar)
        (dest / f"{case.id}.gz-tar").write_bytes(b"\x01" + tar)
        if data[:2] == b"\x1f\x8b":
            (dest / f"{case.id}.gz").write_bytes(b"\x02" + data)
        count += 3
    for group in (HOSTILE, HIDDEN_HP, LEGIT, GLOBAL_PATH):
        for name, make in group.items():
            (dest / f"patched-{name}.tar").write_bytes(b"\x00" + make())
            (dest / f"patched-{name}.gz-tar").write_bytes(b"\x01" + make())
            count += 2
    return count


def main() -> None:
    if "--seeds" in sys.argv:
        print(write_seeds(HERE / "seeds"), "seeds in", HERE / "seeds")
        return
    if "--replay" in sys.argv:  # python fuzz_tar.py --replay FILE...: judge saved inputs without atheris
        for name in sys.argv[sys.argv.index("--replay") + 1 :]:
            try:
                _one_input(Path(name).read_bytes())
                print(name, "ok", dict(STATS))
            except Finding as exc:
                print(name, "FINDING", exc)
        return
    try:
        import atheris
    except ImportError:
        sys.exit("fuzz_tar.py: the fuzzer needs atheris: pip install atheris (see tests/fuzz/README.md)")

    os.environ.setdefault("DUMMY_TRAINING_SCAN_THREADS", "1")
    with atheris.instrument_imports():
        import dummy_training.engine.archive  # noqa: F401
        import dummy_training.engine.gzip_scan  # noqa: F401
        import dummy_training.engine.tar_scan  # noqa: F401
    import atexit

    atexit.register(lambda: print("fuzz_tar stats:", dict(STATS), file=sys.stderr))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
