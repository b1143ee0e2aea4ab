"""Helpers for the S3-to-S3 tests: big-enough model archives, request recording, and leftover checks."""

from __future__ import annotations

import functools
import io
import random
import tarfile
import zlib
from typing import Any

from archives import MTIME

MiB = 1 << 20


@functools.cache
def big_model(total_mib: int, *, with_hyperparameters: bool = False, seed: int = 1) -> bytes:
    """A gzip'd tar of about ``total_mib`` MiB compressed: incompressible weight shards plus a few configs."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = MTIME
            tar.addfile(info, io.BytesIO(data))

        add("config.json", b'{"hidden": 16}')
        if with_hyperparameters:
            add("hyperparameters.json", b'{"epochs": 1}')
        remaining = total_mib * MiB
        i = 0
        while remaining > 0:
            n = min(remaining, 3 * MiB + rng.randrange(MiB))
            add(f"model/shard-{i:03d}.bin", rng.randbytes(n))
            remaining -= n
            i += 1
        add("tokenizer.json", b'{"a": 1}' * 100)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    return compressor.compress(buf.getvalue()) + compressor.flush()


class Recorder:
    """Records the parameters of every S3 call a client makes (botocore ``provide-client-params`` hook)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def attach(self, client: Any) -> Any:
        client.meta.events.register("provide-client-params.s3", self._record, unique_id=f"recorder-{id(self)}")
        return client

    def _record(self, params: Any = None, model: Any = None, **_: Any) -> None:
        self.calls.append((model.name, dict(params or {})))

    def ops(self) -> list[str]:
        return [name for name, _ in self.calls]

    def params(self, op: str) -> list[dict[str, Any]]:
        return [p for name, p in self.calls if name == op]

    def copy_ranges(self) -> list[tuple[int, int]]:
        out = []
        for p in self.params("UploadPartCopy"):
            a, b = p["CopySourceRange"].removeprefix("bytes=").split("-")
            out.append((int(a), int(b) + 1))
        return out


def open_uploads(s3: Any, bucket: str, key: str | None = None) -> list[dict[str, Any]]:
    """Multipart uploads still open in ``bucket`` (for ``key`` only when given)."""
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [u for u in uploads if key is None or u["Key"] == key]


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    return any(o["Key"] == key for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def read(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def deny_s3(request: Any, **_: Any) -> Any:
    """A botocore before-send hook answering every request with S3's 403."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **_: Any):  # noqa: ANN202
            yield b""

    return AWSResponse(request.url, 403, {}, Raw())
