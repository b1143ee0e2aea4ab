"""The two ends of the engine: where the archive bytes come from and where the output goes.

The engine (scan, validation, decision, splice) sees only these protocols. A local file and an S3 object are
both a ``ByteSource``; a local file written to a temp name and renamed, and an S3 multipart upload, are both a
``Sink``. ``dummy_training.ends.factory`` picks the implementation from the location string.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class ByteSource(Protocol):
    """A read-only, fixed-size byte sequence (a local file, or an S3 object pinned to its ETag)."""

    #: Total size in bytes.
    size: int
    #: Path or URI, for logs and provenance.
    location: str

    @property
    def local_path(self) -> str | None:
        """A local filesystem path when the bytes are a local file (enables fast native scanners)."""

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield bytes [start, end) in order, in chunks of at most ``chunk_size`` (reads may run ahead)."""

    def pread(self, offset: int, length: int) -> bytes:
        """Return up to ``length`` bytes at ``offset`` (short only at end of data)."""

    def provenance(self) -> Mapping[str, str]:
        """Identity of what was read (e.g. ETag / VersionId) for the output's metadata."""

    def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """An output written front to back and published atomically by ``commit``.

    Output = the concatenation of ``copy_range`` ranges and ``write`` data in call order. Until ``commit``
    nothing is visible at the target; ``abort`` (or an exception before commit) leaves nothing behind.
    """

    location: str

    def copy_range(self, source: ByteSource, start: int, end: int) -> None:
        """Append bytes [start, end) of ``source`` (server-side copy / copy_file_range where possible).

        May return before the copy finished (background copy); ``commit`` waits for it. Consecutive calls
        with contiguous ranges of the same source are merged.
        """

    def write(self, data: bytes) -> None:
        """Append ``data``."""

    def reset(self) -> None:
        """Discard everything appended so far (used when the engine falls back to re-encoding)."""

    def commit(self, metadata: Mapping[str, str] | None = None) -> str:
        """Publish the output atomically; return its final location."""

    def abort(self) -> None:
        """Discard the output; idempotent, safe after commit (then a no-op)."""

    def stats(self) -> Mapping[str, int]:
        """Counters: bytes_copied (server-side / copy_file_range), bytes_written (uploaded / written)."""


def is_s3_uri(location: str) -> bool:
    return location.startswith("s3://")
