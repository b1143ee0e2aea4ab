"""S3 ends of the engine: an object read with parallel ranged GETs, and a multipart upload built from copies.

``S3Source`` pins the object's ETag (and VersionId) with one HeadObject and reads it with a bounded number of
ranged GETs in flight, every one conditional on that ETag, so an object overwritten mid-run fails the run with
one line instead of producing a mixed archive. Nothing is written to local disk.

``S3Sink`` publishes nothing until ``commit``. It opens a multipart upload at once (so a missing bucket or a
denied PutObject fails before the scan), turns ``copy_range`` of an ``S3Source`` into server-side
``UploadPartCopy`` parts issued in the background as the kept prefix grows (each 5 MiB..5 GiB, at most 10,000,
holding back at least 5 MiB so the last copy part before the uploaded tail is never too small), and uploads
``write`` data as the last part(s). At ``commit``:

* the whole source copied and nothing written (preserve): ``CopyObject`` up to 5 GiB, else the multipart copy;
* an output under 5 MiB: the bytes are read (at most 5 MiB) and sent with one ``PutObject``;
* otherwise ``CompleteMultipartUpload`` of the copy parts and the uploaded tail.

S3 fixes an object's user metadata when its upload is created, before the engine has decided anything; the
upload is created with the metadata ``repack`` commits for an injected archive (:func:`expected_metadata`).
If ``commit`` brings other metadata, the output is rebuilt server-side with it (or, when parts were already
uploaded from this machine, its metadata is replaced with a server-side copy onto itself after completion).

``abort`` aborts the upload (twice around the in-flight parts, as S3 advises), so a failure, bad input or
SIGTERM leaves no object and no orphaned parts. ``TRAFFIC`` counts the bytes each S3 operation sent and
received, from a botocore event hook on every client this module makes.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dummy_training import __version__, aws, contract
from dummy_training.ends.base import ByteSource
from dummy_training.errors import DummyTrainingError, InputNotFoundError, InvalidInputError, RuntimeIOError

log = logging.getLogger("dummy_training.s3")

MiB = 1 << 20
GiB = 1 << 30
#: S3 multipart limits.
MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10_000
#: CopyObject copies at most 5 GiB in one request.
MAX_COPY_OBJECT = 5 * GiB

#: Reading: bytes per ranged GET and GETs in flight (memory ~ GET_PART_SIZE * (GETS_IN_FLIGHT + 1)).
GET_PART_SIZE = int(os.environ.get("DUMMY_TRAINING_S3_GET_PART_SIZE", 8 * MiB))
GETS_IN_FLIGHT = int(os.environ.get("DUMMY_TRAINING_S3_GETS_IN_FLIGHT", 6))
#: Writing: server-side copy part size (raised for huge sources to stay under 10,000 parts), uploaded part
#: size, and requests in flight. Module-level so tests can shrink them; environment variables for the CLI.
COPY_PART_SIZE = int(os.environ.get("DUMMY_TRAINING_S3_COPY_PART_SIZE", 256 * MiB))
UPLOAD_PART_SIZE = int(os.environ.get("DUMMY_TRAINING_S3_UPLOAD_PART_SIZE", 16 * MiB))
PARTS_IN_FLIGHT = 8
UPLOADS_IN_FLIGHT = 3  # uploaded parts held in memory at once
ABORT_GRACE_SECONDS = 10.0  # parts in flight may finish before the abort (pods get ~30 s after SIGTERM)
ABORT_WAIT_SECONDS = 120.0
_BODY_READ_ATTEMPTS = 5  # breaks of a GET body in a row without progress before we give up
_BODY_RETRY_PAUSE = 0.05  # seconds, doubled after each break without progress
_BODY_PIECE = 1 << 20


# ------------------------------------------------------------------------------------------ traffic
class Traffic:
    """Bytes sent / received per S3 operation, counted by a botocore event hook (thread-safe)."""

    UPLOAD_OPERATIONS = ("PutObject", "UploadPart")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: collections.Counter[str] = collections.Counter()
        self.received: collections.Counter[str] = collections.Counter()
        self.requests: collections.Counter[str] = collections.Counter()

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        events.register("before-send.s3", self._before_send, unique_id=f"dummy-training-traffic-{id(self)}")
        events.register("after-call.s3", self._after_call, unique_id=f"dummy-training-traffic-rx-{id(self)}")
        return client

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        length = request.headers.get("Content-Length")
        if length is None:
            body = request.body
            length = len(body) if isinstance(body, bytes | bytearray) else 0
        with self._lock:
            self.sent[op] += int(length)
            self.requests[op] += 1
        return None  # returning anything else would replace the HTTP request

    def _after_call(self, http_response: Any = None, event_name: str = "", **_: Any) -> None:
        if http_response is None:
            return
        op = event_name.rsplit(".", 1)[-1]
        if op != "GetObject":
            return
        length = http_response.headers.get("content-length")
        if length:
            with self._lock:
                self.received[op] += int(length)

    @property
    def bytes_uploaded(self) -> int:
        """Request-body bytes of PutObject and UploadPart: the model bytes that left this machine."""
        with self._lock:
            return sum(self.sent[op] for op in self.UPLOAD_OPERATIONS)

    @property
    def bytes_downloaded(self) -> int:
        with self._lock:
            return self.received["GetObject"]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"bytes_uploaded": sum(self.sent[op] for op in self.UPLOAD_OPERATIONS),
                    "bytes_downloaded": self.received["GetObject"],
                    **{f"requests_{op}": n for op, n in sorted(self.requests.items())}}

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.received.clear()
            self.requests.clear()


#: Every client made by this module reports here.
TRAFFIC = Traffic()


def _session() -> Any:
    return aws.session(aws.default_region())


def make_client(endpoint_url: str | None = None, max_pool_connections: int = 16) -> Any:
    """An S3 client (adaptive retries, ``max_pool_connections`` for parallel requests) counted by TRAFFIC."""
    return TRAFFIC.attach(aws.client("s3", endpoint_url=endpoint_url, max_pool_connections=max_pool_connections,
                                     boto_session=_session()))


def _not_found(client: Any, bucket: str, key: str, what: str) -> InputNotFoundError:
    """A one-line 'not found' that says whether the bucket or the object is missing."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if aws.error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return InputNotFoundError(f"{what}: bucket {bucket!r} does not exist")
    except BotoCoreError:
        pass
    return InputNotFoundError(f"{what}: no object at {aws.s3_uri(bucket, key)}")


# ------------------------------------------------------------------------------------------- source
class S3Source:
    """An S3 object as a ByteSource, pinned to the ETag (and VersionId) seen when it was opened."""

    def __init__(self, client: Any, bucket: str, key: str, *, size: int, etag: str, version_id: str | None,
                 get_part_size: int | None = None, gets_in_flight: int | None = None,
                 endpoint_url: str | None = None) -> None:
        self.client = client
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.key = key
        self.location = aws.s3_uri(bucket, key)
        self.size = size
        self.etag = etag
        self.version_id = version_id if version_id and version_id != "null" else None
        #: Reads and copies name the VersionId; dropped (the ETag still pins the bytes) if the credentials may
        #: read the object but not name its version (s3:GetObjectVersion).
        self.pin_version = self.version_id is not None
        self.get_part_size = get_part_size or GET_PART_SIZE
        self.gets_in_flight = max(1, gets_in_flight or GETS_IN_FLIGHT)
        self.bytes_read = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._pool: cf.ThreadPoolExecutor | None = None

    @classmethod
    def open(cls, uri: str, *, endpoint_url: str | None = None, client: Any = None, **kwargs: Any) -> S3Source:
        bucket, key = aws.parse_s3_uri(uri)
        if not key or key.endswith("/"):
            key += contract.MODEL_FILENAME
        client = client or make_client(endpoint_url)
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"read {aws.s3_uri(bucket, key)}"
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if aws.error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                raise _not_found(client, bucket, key, what) from None
            raise aws.translate_error(exc, what) from None
        except BotoCoreError as exc:
            raise aws.translate_error(exc, what) from None
        return cls(client, bucket, key, size=int(head["ContentLength"]), etag=head["ETag"],
                   version_id=head.get("VersionId"), endpoint_url=endpoint_url, **kwargs)

    def reopened(self, *, get_part_size: int | None = None, gets_in_flight: int | None = None) -> S3Source:
        """The same pinned object (ETag, VersionId) through a new client and no threads, for a forked child
        process: a client's pooled sockets and a thread pool do not survive a fork."""
        fresh = S3Source(make_client(self.endpoint_url), self.bucket, self.key, size=self.size, etag=self.etag,
                         version_id=self.version_id, get_part_size=get_part_size or self.get_part_size,
                         gets_in_flight=gets_in_flight or self.gets_in_flight, endpoint_url=self.endpoint_url)
        fresh.pin_version = self.pin_version
        return fresh

    # --------------------------------------------------------------------------- ByteSource
    @property
    def local_path(self) -> str | None:
        return None

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return
        part = self.get_part_size
        if end - start <= part:
            yield from _split(self._get(start, end), chunk_size)
            return
        ranges = iter([(a, min(a + part, end)) for a in range(start, end, part)])
        pool = self._executor()
        pending: collections.deque[cf.Future[bytes]] = collections.deque()
        try:
            for a, b in ranges:
                pending.append(pool.submit(self._get, a, b))
                if len(pending) >= self.gets_in_flight:
                    break
            while pending:
                data = pending.popleft().result()
                nxt = next(ranges, None)
                if nxt is not None:
                    pending.append(pool.submit(self._get, *nxt))
                yield from _split(data, chunk_size)
                del data
        finally:
            for future in pending:
                future.cancel()

    def pread(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        return self._get(offset, end)

    def provenance(self) -> Mapping[str, str]:
        out = {"etag": self.etag}
        if self.version_id:
            out["version_id"] = self.version_id
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> S3Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------------------- helpers for the sink
    def copy_source(self) -> dict[str, str]:
        src = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id and self.pin_version:
            src["VersionId"] = self.version_id
        return src

    def check_unchanged(self) -> None:
        """HeadObject again: a store that ignores CopySourceIfMatch still cannot publish a mixed archive."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        try:
            with aws.translating(f"read {self.location}"):
                head = self.client.head_object(**kwargs)
        except InputNotFoundError:
            raise self._changed() from None
        if head["ETag"] != self.etag:
            raise self._changed()

    def _changed(self) -> RuntimeIOError:
        return RuntimeIOError(f"read {self.location}: the source object changed while it was being read "
                              f"(ETag {self.etag} is no longer current); run again")

    def _executor(self) -> cf.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(self.gets_in_flight, thread_name_prefix="s3-get")
            return self._pool

    def _get(self, start: int, end: int) -> bytes:
        """Bytes [start, end), conditional on the pinned ETag (and VersionId).

        A body that breaks mid-stream (botocore retries a failed call, but not a body cut after the call
        returned) is resumed: the bytes received are kept and only the rest is asked for again. Up to
        ``_BODY_READ_ATTEMPTS`` breaks in a row without a byte of progress, with a growing pause between them."""
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"read {self.location}"
        data = bytearray()
        stalled = 0
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key,
                                      "Range": f"bytes={start + len(data)}-{end - 1}", "IfMatch": self.etag}
            if self.version_id and self.pin_version:
                kwargs["VersionId"] = self.version_id
            try:
                response = self.client.get_object(**kwargs)
            except ClientError as exc:
                code = aws.error_code(exc)
                if code in ("AccessDenied", "403") and "VersionId" in kwargs:
                    log.info("no permission to read version %s of %s: pinning to its ETag only",
                             self.version_id, self.location)
                    self.pin_version = False
                    continue
                if code in ("PreconditionFailed", "412"):
                    raise self._changed() from None
                if code in ("NoSuchKey", "404", "NoSuchVersion"):
                    raise self._changed() from None
                raise aws.translate_error(exc, what) from None
            except BotoCoreError as exc:
                raise aws.translate_error(exc, what) from None
            if response.get("ETag") not in (None, self.etag):
                raise self._changed()
            before = len(data)
            try:
                for piece in response["Body"].iter_chunks(_BODY_PIECE):
                    data += piece
            except (BotoCoreError, OSError) as exc:  # the connection broke mid-body: ask for the rest
                stalled = 0 if len(data) > before else stalled + 1
                if stalled >= _BODY_READ_ATTEMPTS:
                    raise aws.translate_error(exc, what) from None
                log.debug("%s: the body broke after %d of %d bytes (%s): asking for the rest", what, len(data),
                          end - start, exc)
                time.sleep(_BODY_RETRY_PAUSE * 2**stalled)
                continue
            if len(data) != end - start:
                raise RuntimeIOError(f"{what}: asked for {end - start} bytes at {start}, got {len(data)}")
            with self._lock:
                self.bytes_read += len(data)
                self.requests += 1
            return bytes(data)


def _split(data: bytes, chunk_size: int) -> Iterator[bytes]:
    if len(data) <= chunk_size:
        yield data
        return
    view = memoryview(data)
    for i in range(0, len(data), chunk_size):
        yield bytes(view[i:i + chunk_size])


# --------------------------------------------------------------------------------------------- sink
def expected_metadata(source: ByteSource | None, decision: str = contract.DECISION_INJECTED) -> dict[str, str]:
    """The metadata ``repack`` commits for an archive read from ``source`` (see the module doc)."""
    meta = {contract.META_DECISION: decision, contract.META_VERSION: __version__}
    if source is not None:
        meta[contract.META_SOURCE_URI] = source.location
        etag = source.provenance().get("etag")
        if etag:
            meta[contract.META_SOURCE_ETAG] = etag.strip('"')
    return meta


@dataclass
class _Part:
    number: int
    kind: str  # "copy" | "upload"
    size: int
    source: S3Source | None = None  # copy: source and range
    start: int = 0
    end: int = 0
    future: cf.Future[str] | None = None


def copy_part_size_for(size: int, configured: int | None = None) -> int:
    """The copy part size for a source of ``size`` bytes: the configured size, raised to stay under the limits."""
    part = max(configured or COPY_PART_SIZE, MIN_PART)
    needed = -(-size // (MAX_PARTS - 100))  # leave room for the tail parts
    part = max(part, -(-needed // MiB) * MiB)
    return min(part, MAX_PART - MIN_PART)


class S3Sink:
    """An S3 object written as a multipart upload and published by CompleteMultipartUpload (see module doc)."""

    def __init__(self, client: Any, bucket: str, key: str, *, source: ByteSource | None = None,
                 copy_part_size: int | None = None, upload_part_size: int | None = None,
                 parts_in_flight: int = PARTS_IN_FLIGHT) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.location = aws.s3_uri(bucket, key)
        self._source = source
        self.copy_part_size = copy_part_size_for(source.size if source is not None else 0, copy_part_size)
        upload = max(upload_part_size or UPLOAD_PART_SIZE, MIN_PART)
        if source is not None:  # a re-encoded output is about the source's size: stay under 10,000 parts
            upload = max(upload, -(-source.size // (MAX_PARTS // 2) // MiB) * MiB)
        self.upload_part_size = min(upload, MAX_PART)
        self._pool = cf.ThreadPoolExecutor(parts_in_flight, thread_name_prefix="s3-part")
        self._upload_slots = threading.BoundedSemaphore(UPLOADS_IN_FLIGHT)
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._upload_meta = expected_metadata(source)
        self._upload_id: str | None = None
        self._parts: list[_Part] = []
        self._run: tuple[Any, int, int] | None = None  # pending copy run (S3Source, start, end), not yet parts
        self._buffer = bytearray()  # pending written bytes, not yet a part
        self._size = 0
        self._copied = 0  # bytes copied server-side (finished parts)
        self._written = 0  # bytes uploaded (finished parts / PutObject)
        self._fetched = 0  # bytes of copy ranges read back because they were under the part minimum
        self._done = False
        self._generation = 0
        self._whole_planned = False  # the output became the whole source: see _plan_whole_copy
        self._stale: list[tuple[str | None, list[_Part]]] = []  # replaced uploads, aborted at commit / abort
        self._create_upload()

    @classmethod
    def open(cls, uri: str, *, endpoint_url: str | None = None, source: ByteSource | None = None,
             client: Any = None, **kwargs: Any) -> S3Sink:
        bucket, key = aws.parse_s3_uri(uri)
        if not key or key.endswith("/"):
            raise InvalidInputError(f"output {uri!r} names no object key")
        if isinstance(source, S3Source) and (source.bucket, source.key) == (bucket, key):
            raise InvalidInputError(f"the output {uri} is the input model: choose another output key")
        if client is None:
            if isinstance(source, S3Source) and _same_endpoint(source.client, endpoint_url):
                client = source.client
            else:
                client = make_client(endpoint_url)
        return cls(client, bucket, key, source=source, **kwargs)

    # ------------------------------------------------------------------------------ appending
    def copy_range(self, source: ByteSource, start: int, end: int) -> None:
        self._check()
        end = min(end, source.size)
        if end <= start:
            return
        if not self._can_copy(source):
            for data in source.chunks(start, end, 8 * MiB):
                self.write(data)
            return
        self._size += end - start
        run = self._run
        if run is not None and run[0] is source and run[2] == start:
            self._run = (source, run[1], end)
        else:
            self._flush_run(last=False)
            if self._buffer:  # bytes written before this copy: they need a part of their own
                if len(self._buffer) < MIN_PART:
                    take = min(end, start + MIN_PART - len(self._buffer))
                    self._absorb(source, start, take)
                    start = take
                if start < end and len(self._buffer) >= MIN_PART:
                    self._emit_upload(bytes(self._buffer))
                    self._buffer.clear()
            if start < end:
                self._run = (source, start, end)
        if self._whole_source_copy() is None:
            self._emit_copies()
        elif not self._whole_planned:
            self._plan_whole_copy()

    def write(self, data: bytes) -> None:
        self._check()
        if not data:
            return
        self._resume_held_parts()
        if self._run is not None:
            self._flush_run(last=False)
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= self.upload_part_size + MIN_PART:  # keep >= MIN_PART for the last part
            self._emit_upload(bytes(self._buffer[: self.upload_part_size]))
            del self._buffer[: self.upload_part_size]

    def reset(self) -> None:
        self._check()
        self._drain(cancel=True)
        self._generation += 1  # parts of the discarded output are overwritten or left out of the upload
        self._error = None
        self._parts.clear()
        self._run = None
        self._buffer.clear()
        self._size = 0
        self._whole_planned = False

    # ------------------------------------------------------------------------------ publishing
    def commit(self, metadata: Mapping[str, str] | None = None) -> str:
        self._check()
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        try:
            self._publish(meta)
        except BaseException:
            self.abort()
            raise
        self._retire_stale()
        self._done = True
        self._pool.shutdown(wait=False)
        return self.location

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._retire(self._upload_id, self._parts)
        self._upload_id = None
        self._retire_stale()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> Mapping[str, int]:
        return {"bytes_copied": self._copied, "bytes_written": self._written, "bytes_fetched": self._fetched,
                "size": self._size, "parts": len(self._parts)}

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    # ------------------------------------------------------------------------------ planning
    def _can_copy(self, source: ByteSource) -> bool:
        return isinstance(source, S3Source) and _same_endpoint(source.client, self.client.meta.endpoint_url)

    def _emit_copies(self) -> None:
        """Turn the pending copy run into full copy parts, holding back at least MIN_PART for the last one."""
        if self._run is None:
            return
        source, start, end = self._run
        part = self.copy_part_size
        while end - start >= part + MIN_PART:
            self._emit_copy(source, start, start + part)
            start += part
        self._run = (source, start, end)

    def _plan_whole_copy(self) -> None:
        """The output has become the whole source and nothing else, which the engine makes it only for a
        preserve (it says so as soon as its scan meets a root hyperparameters.json). Up to 5 GiB ``commit``
        publishes that with one CopyObject, so no more copy parts are started; past 5 GiB the upload is rebuilt
        now with the preserve metadata, so ``commit`` finds its parts ready instead of copying them all again.
        Were data written after all, the held parts are started again (``_resume_held_parts``)."""
        assert self._run is not None
        self._whole_planned = True
        source = self._run[0]
        if source.size <= MAX_COPY_OBJECT:
            for p in self._parts:
                if p.future is not None:
                    p.future.cancel()  # only parts not yet started are cancelled
            return
        meta = expected_metadata(source, contract.DECISION_PRESERVED)
        if meta != self._upload_meta:
            log.info("the output is the whole source (a preserve): copying it into an upload with the preserve "
                     "metadata")
            self._rebuild(meta, retire_later=True)
        self._emit_copies()

    def _resume_held_parts(self) -> None:
        """Start again the copy parts ``_plan_whole_copy`` cancelled, and copy the rest of the run as usual."""
        if not self._whole_planned:
            return
        self._whole_planned = False
        for p in self._parts:
            if p.future is not None and p.future.cancelled():
                self._start_copy(p)
        self._emit_copies()

    def _flush_run(self, last: bool) -> None:
        """Close the pending copy run: as copy parts when big enough (or the last part), else read it."""
        if self._run is None:
            return
        source, start, end = self._run
        if end - start >= MIN_PART or (last and self._parts):
            self._emit_copies()
            _, start, end = self._run
            if end - start > MAX_PART:  # cannot happen with copy_part_size <= MAX_PART - MIN_PART
                mid = start + (end - start) // 2
                self._emit_copy(source, start, mid)
                start = mid
            self._emit_copy(source, start, end)
        else:
            self._absorb(source, start, end)
        self._run = None

    def _absorb(self, source: S3Source, start: int, end: int) -> None:
        """Read a copy range too small for a part of its own into the written bytes (under MIN_PART)."""
        for data in source.chunks(start, end, 8 * MiB):
            self._buffer += data
            self._fetched += len(data)

    # ------------------------------------------------------------------------------ requests
    def _create_upload(self) -> None:
        from botocore.exceptions import ClientError

        what = f"write {self.location}"
        with aws.translating(what):
            try:
                response = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                               Metadata=self._upload_meta)
            except ClientError as exc:
                if aws.error_code(exc) in ("404", "NoSuchBucket"):
                    raise InputNotFoundError(f"{what}: output bucket {self.bucket!r} does not exist") from None
                raise
        self._upload_id = response["UploadId"]
        self._generation += 1

    def _next_number(self) -> int:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise RuntimeIOError(f"write {self.location}: more than {MAX_PARTS} parts (raise the part sizes)")
        return number

    def _emit_copy(self, source: S3Source, start: int, end: int) -> None:
        self._raise_failure()
        part = _Part(self._next_number(), "copy", end - start, source, start, end)
        self._start_copy(part)
        self._parts.append(part)

    def _start_copy(self, part: _Part) -> None:
        assert part.source is not None
        part.future = self._pool.submit(self._copy_part, self._upload_id, part.number, part.source, part.start,
                                        part.end)
        part.future.add_done_callback(self._failure_noter())

    def _emit_upload(self, data: bytes) -> None:
        self._raise_failure()
        while not self._upload_slots.acquire(timeout=0.5):  # bounded memory; stay responsive to signals
            self._raise_failure()
        part = _Part(self._next_number(), "upload", len(data))
        try:
            part.future = self._pool.submit(self._upload_part, self._upload_id, part.number, data)
        except BaseException:
            self._upload_slots.release()
            raise
        part.future.add_done_callback(lambda _f: self._upload_slots.release())
        part.future.add_done_callback(self._failure_noter())
        self._parts.append(part)

    def _copy_part(self, upload_id: str, number: int, source: S3Source, start: int, end: int) -> str:
        with aws.translating(f"copy {source.location} to {self.location}"):
            response = self.client.upload_part_copy(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number,
                CopySource=source.copy_source(), CopySourceIfMatch=source.etag,
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
        with self._lock:
            self._copied += end - start
        return response["CopyPartResult"]["ETag"]

    def _upload_part(self, upload_id: str, number: int, data: bytes) -> str:
        with aws.translating(f"write {self.location}"):
            response = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                                               PartNumber=number, Body=data)
        with self._lock:
            self._written += len(data)
        return response["ETag"]

    def _failure_noter(self) -> Any:
        generation = self._generation  # failures of parts of a discarded upload (reset, rebuild) do not count

        def note(future: cf.Future[str]) -> None:
            if future.cancelled() or generation != self._generation:
                return
            exc = future.exception()
            if exc is not None and self._error is None:
                self._error = exc

        return note

    def _raise_failure(self) -> None:
        exc = self._error
        if exc is None:
            return
        if isinstance(exc, DummyTrainingError):
            raise exc
        raise aws.translate_error(exc, f"write {self.location}")

    def _check(self) -> None:
        if self._done:
            raise RuntimeError("sink already committed or aborted")
        self._raise_failure()

    def _drain(self, cancel: bool, timeout: float | None = None) -> None:
        futures = [p.future for p in self._parts if p.future is not None]
        if cancel:
            for f in futures:
                f.cancel()
        if timeout != 0:
            cf.wait(futures, timeout=timeout)

    def _wait_parts(self) -> list[dict[str, Any]]:
        done = []
        for part in self._parts:
            assert part.future is not None
            try:
                etag = part.future.result()
            except DummyTrainingError:
                raise
            except Exception as exc:
                raise aws.translate_error(exc, f"write {self.location}") from None
            done.append({"PartNumber": part.number, "ETag": etag})
        return done

    def _abort_upload(self, upload_id: str | None = None) -> None:
        upload_id = upload_id or self._upload_id
        if upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
        except Exception as exc:  # noqa: BLE001 - abort runs while another error propagates
            if aws.error_code(exc) not in ("NoSuchUpload", "404"):
                log.warning("could not abort the multipart upload %s of %s: %s", upload_id, self.location,
                            aws.translate_error(exc, "abort"))

    # ------------------------------------------------------------------------------ commit paths
    def _whole_source_copy(self) -> S3Source | None:
        """The source when the output is exactly one whole S3 source and nothing else."""
        if self._buffer or self._run is None or self._run[2] != self._run[0].size:
            return None
        source, start, end = self._run
        expected = 0
        for p in self._parts:
            if p.kind != "copy" or p.source is not source or p.start != expected:
                return None
            expected = p.end
        if expected != start or end != source.size:
            return None
        return source

    def _copy_sources(self) -> list[S3Source]:
        sources: list[S3Source] = []
        for p in self._parts:
            if p.source is not None and p.source not in sources:
                sources.append(p.source)
        return sources

    def _publish(self, meta: dict[str, str]) -> None:
        whole = self._whole_source_copy()
        if whole is not None and whole.size <= MAX_COPY_OBJECT and (meta != self._upload_meta or not self._parts):
            for p in self._parts:
                assert p.future is not None
                p.future.cancel()
            self._copy_object(whole, meta)
            self._discard_upload()
            return
        self._resume_held_parts()
        if not self._parts and self._size < MIN_PART:
            self._flush_run(last=False)  # reads a small copy run into the buffer
            self._put_object(bytes(self._buffer), meta)
            self._buffer.clear()
            self._discard_upload()
            return
        self._flush_run(last=True)
        tail = bytes(self._buffer)
        self._buffer.clear()
        if meta != self._upload_meta and all(p.kind == "copy" for p in self._parts):
            self._rebuild(meta)  # server-side again, now with the right metadata
        if tail:
            self._emit_upload(tail)
        parts = self._wait_parts()
        for source in self._copy_sources():
            source.check_unchanged()
        with aws.translating(f"write {self.location}"):
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                                  MultipartUpload={"Parts": parts})
        self._upload_id = None
        if meta != self._upload_meta:  # parts were uploaded from here: fix the metadata in place
            self._replace_metadata(meta)

    def _retire_stale(self) -> None:
        stale, self._stale = self._stale, []
        for upload_id, parts in stale:
            self._retire(upload_id, parts)

    def _discard_upload(self) -> None:
        self._retire(self._upload_id, self._parts)
        self._upload_id = None

    def _retire(self, upload_id: str | None, parts: list[_Part]) -> None:
        """Abort ``upload_id`` and make sure none of ``parts`` lands in it afterwards.

        Parts not started are cancelled; running ones get a short grace to finish first (a request racing an
        abort may still store its part, and some stores answer it with errors that are retried), then the
        upload is aborted, and aborted again once any straggler is done, as S3 advises.
        """
        futures = [p.future for p in parts if p.future is not None]
        for f in futures:
            f.cancel()
        _, running = cf.wait(futures, timeout=ABORT_GRACE_SECONDS)
        self._abort_upload(upload_id)
        if running:
            cf.wait(running, timeout=ABORT_WAIT_SECONDS)
            self._abort_upload(upload_id)

    def _rebuild(self, meta: dict[str, str], *, retire_later: bool = False) -> None:
        """Start a new upload carrying ``meta`` and copy the same ranges into it; discard the old one (now, or
        with ``retire_later`` at commit or abort, so a scan in progress is not held up by its running parts)."""
        old_id, old_parts = self._upload_id, self._parts
        self._upload_meta = meta
        self._parts = []
        self._create_upload()
        if retire_later:
            for p in old_parts:
                if p.future is not None:
                    p.future.cancel()
            self._stale.append((old_id, old_parts))
        else:
            self._retire(old_id, [p for p in old_parts if not p.future or not p.future.done()])
        for p in old_parts:
            assert p.source is not None
            self._emit_copy(p.source, p.start, p.end)

    def _copy_object(self, source: S3Source, meta: dict[str, str]) -> None:
        source.check_unchanged()
        with aws.translating(f"copy {source.location} to {self.location}"):
            self.client.copy_object(Bucket=self.bucket, Key=self.key, CopySource=source.copy_source(),
                                    CopySourceIfMatch=source.etag, Metadata=meta, MetadataDirective="REPLACE")
        self._copied += source.size

    def _put_object(self, data: bytes, meta: dict[str, str]) -> None:
        with aws.translating(f"write {self.location}"):
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, Metadata=meta)
        self._written += len(data)

    def _replace_metadata(self, meta: dict[str, str]) -> None:
        log.info("replacing the metadata of %s with a server-side copy onto itself", self.location)
        with aws.translating(f"write {self.location}"):
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
            if int(head["ContentLength"]) > MAX_COPY_OBJECT:
                raise RuntimeIOError(f"write {self.location}: cannot replace the metadata of an object over 5 GiB")
            self.client.copy_object(Bucket=self.bucket, Key=self.key,
                                    CopySource={"Bucket": self.bucket, "Key": self.key},
                                    CopySourceIfMatch=head["ETag"], Metadata=meta, MetadataDirective="REPLACE")


def _same_endpoint(client: Any, endpoint_url: str | None) -> bool:
    if endpoint_url is None:
        return True
    return client.meta.endpoint_url.rstrip("/") == endpoint_url.rstrip("/")
