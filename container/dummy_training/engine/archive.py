"""The repack engine: validate a model archive and decide, then preserve it or inject hyperparameters.json.

``repack_archive(source, sink, hyperparameters)`` is the one entry point. It reads the archive once as a
stream (never extracting anything), validates every tar member, and then:

* **preserve** — the archive has a root ``hyperparameters.json``: the output is the input, byte for byte
  (``sink.copy_range``; a plain tar is gzip'd instead, since the output is always gzip);
* **inject** — it has none: a new root ``hyperparameters.json`` is appended by splicing the gzip stream
  (the compressed bytes before the last deflate block boundary ahead of the tar end marker are kept verbatim,
  only the tail is re-deflated), or by re-encoding for inputs the splice cannot take (plain tar, old GNU
  sparse members).

The output depends on the inputs only (never on the clock, the host, the CPU count or the scanner), so the same
inputs give the same bytes: the new member's mtime is ``SOURCE_DATE_EPOCH`` when set, else the newest mtime among
the archive's members (``MtimeRule``), and the gzip framing written carries no timestamp or file name.

The engine never commits or aborts the sink: the caller commits on success and aborts on any exception.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dummy_training.contract import DECISION_INJECTED, DECISION_PRESERVED, HYPERPARAMETERS_FILENAME
from dummy_training.ends.base import ByteSource, Sink
from dummy_training.engine.gzip_scan import (
    GZIP_MAGIC,
    PARALLEL_READ,
    REMOTE_READ_BLOCK,
    GzipScan,
    has_long_blocks,
    inflate_from,
    scan_gzip,
    scan_gzip_parallel,
)
from dummy_training.engine.reencode import CHUNK, gunzip_chunks, reencode
from dummy_training.engine.scan_child import run_in_child
from dummy_training.engine.splice import MAX_USTAR_MTIME, build_tail, end_of_archive, tar_member
from dummy_training.engine.tar_scan import BLOCK, MemberInfo, TarScanner, all_zero, checksum_ok
from dummy_training.errors import DummyTrainingError, InputNotFoundError, InvalidInputError, RuntimeIOError

__all__ = ["EngineResult", "MemberInfo", "MtimeRule", "repack_archive", "source_date_epoch"]

log = logging.getLogger("dummy_training.engine.archive")

PROGRESS_INTERVAL = 0.5
#: A splice tail longer than this (uncompressed) is worth a word in the log: it costs another inflate pass.
LONG_TAIL = 64 << 20
PARALLEL_THREADS = 2


@dataclass
class EngineResult:
    decision: str  # contract.DECISION_INJECTED or contract.DECISION_PRESERVED
    method: str  # "copy" (preserve), "splice", or "reencode"
    member_count: int
    members: list[MemberInfo] = field(default_factory=list)  # at most the first 500
    uncompressed_size: int = 0  # of the input tar stream
    input_size: int = 0
    output_size: int = 0
    kept_prefix: int = 0  # bytes of the input copied verbatim to the output
    gzip_members: int = 0  # 0 for plain tar
    scanner: str = ""  # "rapidgzip" (parallel), "zlib-ng"/"zlib" (single thread), "tar" (plain tar)
    mtime: int | None = None  # of the injected hyperparameters.json (None: preserved, nothing injected)
    mtime_source: str = ""  # how that mtime was chosen: one of the MTIME_FROM_* values ("" when preserved)


#: ``SOURCE_DATE_EPOCH`` (https://reproducible-builds.org/specs/source-date-epoch/): the injected member's mtime.
SOURCE_DATE_EPOCH_ENV = "SOURCE_DATE_EPOCH"
MTIME_FROM_ARGUMENT = "mtime argument"
MTIME_FROM_SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
MTIME_FROM_NEWEST_MEMBER = "newest member"
MTIME_FROM_NO_MEMBERS = "no member mtime"  # no member, or none with a readable mtime since 1970: 0


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` as an integer, None when unset or empty. Any other value that is not a whole number of
    seconds since 1970 a ustar header can hold is an InvalidInputError (exit 2): a build that asked for
    reproducible output must not quietly get another timestamp."""
    raw = os.environ.get(SOURCE_DATE_EPOCH_ENV)
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not re.fullmatch(r"[0-9]+", value):
        raise InvalidInputError(f"{SOURCE_DATE_EPOCH_ENV}={raw!r} is not a whole number of seconds since 1970 "
                                "(what date +%s prints)")
    seconds = int(value)
    if seconds > MAX_USTAR_MTIME:
        raise InvalidInputError(f"{SOURCE_DATE_EPOCH_ENV}={value} is past the largest mtime a tar header holds "
                                f"({MAX_USTAR_MTIME})")
    return seconds


@dataclass(frozen=True)
class MtimeRule:
    """How the injected member's mtime is chosen: ``override`` (the ``mtime`` argument), else ``epoch``
    (``SOURCE_DATE_EPOCH``), else the newest mtime among the archive's members (capped to what ustar holds)."""

    override: float | None = None
    epoch: int | None = None

    def choose(self, tar: TarScanner) -> tuple[int, str]:
        """(mtime, how it was chosen: an MTIME_FROM_* value) for an archive scanned by ``tar``."""
        if self.override is not None:
            return int(self.override), MTIME_FROM_ARGUMENT
        if self.epoch is not None:
            return self.epoch, MTIME_FROM_SOURCE_DATE_EPOCH
        if tar.newest_mtime is None:
            return 0, MTIME_FROM_NO_MEMBERS
        return min(tar.newest_mtime, MAX_USTAR_MTIME), MTIME_FROM_NEWEST_MEMBER


class _Progress:
    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._last = 0.0

    def __call__(self, done: int, force: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._callback(min(done, self._total), self._total)


#: Background copies of the kept prefix end on a multiple of this, so input and output offsets stay
#: block-aligned and ``copy_file_range`` can share extents (reflink) on XFS and btrfs instead of copying.
COPY_ALIGN = 1 << 20


class _PrefixCopier:
    """Copies the certainly-kept compressed prefix to the sink while the scan runs."""

    def __init__(self, source: ByteSource, sink: Sink) -> None:
        self.source = source
        self.sink = sink
        self.copied = 0

    def advance(self, upto: int) -> None:
        """The first ``upto`` bytes are certainly kept: copy them, up to an aligned offset (or the whole input),
        in the background."""
        self._copy_to(upto if upto >= self.source.size else upto - upto % COPY_ALIGN)

    def exactly(self, upto: int) -> None:
        """Make the output hold exactly input[0:upto]."""
        if upto < self.copied:  # cannot happen with a consistent scan; stay correct anyway
            self.sink.reset()
            self.copied = 0
        self._copy_to(upto)

    def _copy_to(self, upto: int) -> None:
        if upto > self.copied:
            self.sink.copy_range(self.source, self.copied, upto)
            self.copied = upto


def _looks_like_tar(head: bytes) -> bool:
    return len(head) >= BLOCK and (all_zero(head[:BLOCK]) or checksum_ok(head[:BLOCK]))


def _missing(tar: TarScanner) -> InputNotFoundError:
    seen = (f" (found {tar.nested_hyperparameters}, not at the root)" if tar.nested_hyperparameters else "")
    return InputNotFoundError(f"the archive has no root hyperparameters.json and no hyperparameters were given{seen}")


def repack_archive(
    source: ByteSource,
    sink: Sink,
    hyperparameters: bytes | None,
    *,
    progress: Callable[[int, int], None] | None = None,
    mtime: float | None = None,
) -> EngineResult:
    """Validate ``source`` and write the repacked archive to ``sink`` (not committed); see the module doc.

    ``mtime`` overrides the injected member's mtime (else ``SOURCE_DATE_EPOCH``, else the newest member's)."""
    # read and judged before anything is read or written
    rule = MtimeRule(override=mtime, epoch=source_date_epoch() if mtime is None else None)
    try:
        return _repack(source, sink, hyperparameters, _Progress(progress, source.size), rule)
    except DummyTrainingError:
        raise
    except MemoryError:
        raise
    except OSError as exc:
        raise RuntimeIOError(f"I/O error while repacking {source.location}: {exc}") from None


def _judge_linked_hyperparameters(source: ByteSource, tar: TarScanner, *, compressed: bool) -> None:
    """A root hyperparameters.json stored as a hard link: read its target's data again (it went by before the
    link was seen) and judge it as the file every reader extracts. Rare, so a second pass is fine."""
    if not tar.needs_linked_hyperparameters:
        return
    assert tar.root_hyperparameters_link is not None
    offset, size = tar.root_hyperparameters_link
    if not compressed:
        tar.set_linked_hyperparameters(source.pread(offset, size))
        return
    data = bytearray()
    pos = 0
    for piece in gunzip_chunks(source):
        if pos + len(piece) > offset:
            data += piece[max(0, offset - pos) : offset + size - pos]
        pos += len(piece)
        if len(data) >= size:
            break
    if len(data) < size:
        raise InvalidInputError("the input changed while it was being read (tar stream ended early)")
    tar.set_linked_hyperparameters(bytes(data))


def _repack(source: ByteSource, sink: Sink, hyperparameters: bytes | None, progress: _Progress,
            rule: MtimeRule) -> EngineResult:
    size = source.size
    head = source.pread(0, BLOCK) if size else b""
    if head[:2] == GZIP_MAGIC:
        return _repack_gzip(source, sink, hyperparameters, progress, rule)
    if _looks_like_tar(head):
        return _repack_plain_tar(source, sink, hyperparameters, progress, rule)
    raise InvalidInputError(f"{source.location}: not a gzip or tar archive")


def injected_name(tar: TarScanner) -> str:
    """The injected member's name: ``./hyperparameters.json`` when the archive's first member starts with ``./``
    (``tar czf m.tgz -C src .``), so ``tar xzf out.tar.gz ./hyperparameters.json`` finds it as it finds its
    siblings; else ``hyperparameters.json``. Either is the root one for every reader (and for this scanner)."""
    return ("./" if tar.dot_slash else "") + HYPERPARAMETERS_FILENAME


@dataclass(frozen=True)
class _Appended:
    data: bytes  # the new member + the end-of-archive blocks
    mtime: int
    mtime_source: str


def _appended(hyperparameters: bytes, tar: TarScanner, rule: MtimeRule) -> _Appended:
    assert tar.end is not None
    mtime, how = rule.choose(tar)
    member = tar_member(hyperparameters, mtime=mtime, overrides=tar.global_pax, name=injected_name(tar))
    return _Appended(member + end_of_archive(tar.end + len(member)), mtime, how)


def _result(tar: TarScanner, decision: str, method: str, *, uncompressed: int, input_size: int, output_size: int,
            kept: int, gzip_members: int, scanner: str, appended: _Appended | None = None) -> EngineResult:
    return EngineResult(decision, method, tar.member_count, list(tar.members), uncompressed, input_size,
                        output_size, kept, gzip_members, scanner,
                        mtime=appended.mtime if appended else None,
                        mtime_source=appended.mtime_source if appended else "")


def _repack_plain_tar(source: ByteSource, sink: Sink, hyperparameters: bytes | None, progress: _Progress,
                      rule: MtimeRule) -> EngineResult:
    tar = TarScanner()
    done = 0
    for data in source.chunks(0, None, CHUNK):
        tar.feed(data)
        done += len(data)
        progress(done)
    tar.finish()
    assert tar.end is not None
    _judge_linked_hyperparameters(source, tar, compressed=False)
    written_before = sink.stats().get("bytes_written", 0)
    appended = None
    if tar.has_root_hyperparameters:
        decision = DECISION_PRESERVED
        reencode(source, sink, compressed=False, end=None, appended=b"", threads=compress_threads())
    else:
        if hyperparameters is None:
            raise _missing(tar)
        decision = DECISION_INJECTED
        appended = _appended(hyperparameters, tar, rule)
        reencode(source, sink, compressed=False, end=tar.end, appended=appended.data, threads=compress_threads())
    progress(source.size, force=True)
    output = sink.stats().get("bytes_written", 0) - written_before
    return _result(tar, decision, "reencode", uncompressed=source.size, input_size=source.size, output_size=output,
                   kept=0, gzip_members=0, scanner="tar", appended=appended)


SCAN_THREADS_ENV = "DUMMY_TRAINING_SCAN_THREADS"


def _cgroup_cpu_limit() -> float | None:
    """The container's CPU limit from cgroup v2 ``cpu.max`` (or v1 quota/period); None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def available_cpus() -> float:
    """CPUs this process may use: its affinity mask, capped by the cgroup limit (a pod's CPU limit)."""
    try:
        cpus: float = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return min(cpus, limit) if limit else cpus


def compress_threads() -> int:
    """Threads that compress what must be re-deflated (the tail of a splice, or a whole re-encode)."""
    return max(1, int(available_cpus()))


def _parallel_worthwhile() -> bool:
    """Parallel decompression when this process may use about two CPUs (``DUMMY_TRAINING_SCAN_THREADS=1`` forces
    the single-thread scanner, ``2`` the parallel one). What the CPUs are allowed decides, not the momentary load:
    the load average lags by a minute and says nothing about this process's share."""
    forced = os.environ.get(SCAN_THREADS_ENV, "").strip()
    if forced.isdigit():
        return int(forced) >= PARALLEL_THREADS
    return available_cpus() >= PARALLEL_THREADS - 0.5


#: Ranged GETs in flight while a remote source feeds the parallel scanner (REMOTE_READ_BLOCK bytes each).
REMOTE_READS_IN_FLIGHT = 6


def _scan_remote_parallel(source: ByteSource, **kwargs: object) -> GzipScan | None:
    """The parallel scan of a remote source, in the child: through a client of its own (see scan_child)."""
    fresh = source.reopened(get_part_size=REMOTE_READ_BLOCK,  # type: ignore[attr-defined]
                            gets_in_flight=REMOTE_READS_IN_FLIGHT)
    try:
        scan = scan_gzip_parallel(fresh, read_block=REMOTE_READ_BLOCK, **kwargs)  # type: ignore[arg-type]
        if scan is not None:
            scan.bytes_read = fresh.bytes_read
        return scan
    finally:
        fresh.close()


def _scan(source: ByteSource, copier: _PrefixCopier, progress: _Progress) -> GzipScan:
    scan = None
    parallel = _parallel_worthwhile()
    if parallel and has_long_blocks(source):
        log.info("the archive's deflate blocks are longer than %d MiB (e.g. zlib-ng level 1 or isal level 0), "
                 "which the parallel scan cannot split: scanning with the single-thread scanner",
                 PARALLEL_READ >> 20)
        parallel = False
    if parallel:
        # in a child process under a memory budget: rapidgzip's memory grows with the compression ratio
        if source.local_path is not None:
            scan = run_in_child(scan_gzip_parallel, source, on_kept=copier.advance, on_progress=progress,
                                parallelization=PARALLEL_THREADS)
        elif hasattr(source, "reopened"):  # an S3 object: rapidgzip over ranged GETs
            scan = run_in_child(_scan_remote_parallel, source, on_kept=copier.advance, on_progress=progress,
                                parallelization=PARALLEL_THREADS)
            if isinstance(scan, GzipScan) and hasattr(source, "bytes_read"):
                source.bytes_read += scan.bytes_read
        assert scan is None or isinstance(scan, GzipScan)
    if scan is None:
        scan = scan_gzip(source, on_kept=copier.advance, on_progress=progress)
    return scan


def _repack_gzip(source: ByteSource, sink: Sink, hyperparameters: bytes | None, progress: _Progress,
                 rule: MtimeRule) -> EngineResult:
    size = source.size
    copier = _PrefixCopier(source, sink)
    scan = _scan(source, copier, progress)
    tar = scan.tar
    end = tar.end
    assert end is not None
    _judge_linked_hyperparameters(source, tar, compressed=True)
    if tar.has_root_hyperparameters:
        copier.exactly(size)
        progress(size, force=True)
        return _result(tar, DECISION_PRESERVED, "copy", uncompressed=scan.uncompressed_size, input_size=size,
                       output_size=size, kept=size, gzip_members=scan.gzip_members,
                       scanner=scan.scanner)
    if hyperparameters is None:
        raise _missing(tar)
    appended = _appended(hyperparameters, tar, rule)
    point = scan.point
    if tar.old_gnu_sparse or point is None:
        copier.exactly(0)
        sink.reset()
        before = sink.stats().get("bytes_written", 0)
        reencode(source, sink, compressed=True, end=end, appended=appended.data, threads=compress_threads())
        output = sink.stats().get("bytes_written", 0) - before
        progress(size, force=True)
        return _result(tar, DECISION_INJECTED, "reencode", uncompressed=scan.uncompressed_size, input_size=size,
                       output_size=output, kept=0, gzip_members=scan.gzip_members,
                       scanner=scan.scanner, appended=appended)
    kept = point.bit // 8
    if end - point.u > LONG_TAIL:
        log.info("the last deflate block boundary before the tar end is %.1f MB before it (the archive was written "
                 "with very long deflate blocks, e.g. by zlib-ng level 1 or isal level 0): re-deflating that much",
                 (end - point.u) / 1e6)
    copier.exactly(kept)
    last_byte = source.pread(kept, 1)[0] if point.bit % 8 else 0
    output = kept
    tail = build_tail(point, last_byte, inflate_from(source, point, end), appended.data, threads=compress_threads())
    for piece in tail:
        sink.write(piece)
        output += len(piece)
    progress(size, force=True)
    return _result(tar, DECISION_INJECTED, "splice", uncompressed=scan.uncompressed_size, input_size=size,
                   output_size=output, kept=kept, gzip_members=scan.gzip_members, scanner=scan.scanner,
                   appended=appended)
