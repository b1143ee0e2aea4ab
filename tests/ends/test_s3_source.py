"""S3Source against moto's HTTP server: ranged reads, ETag pinning, versioning, one-line errors."""

from __future__ import annotations

import os
from typing import Any

import pytest
from s3_helpers import MiB, deny_s3

from dummy_training.ends import s3_object
from dummy_training.ends.s3_object import S3Source
from dummy_training.errors import InputNotFoundError, InvalidInputError, RuntimeIOError


@pytest.fixture
def obj(s3, bucket) -> tuple[str, bytes]:  # noqa: ANN001
    data = os.urandom(1_000_003)
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=data)
    return f"s3://{bucket}/in/model.tar.gz", data


def _open(uri: str, endpoint: str, **kwargs: Any) -> S3Source:
    kwargs.setdefault("get_part_size", 64 * 1024)
    kwargs.setdefault("gets_in_flight", 3)
    return S3Source.open(uri, endpoint_url=endpoint, **kwargs)


@pytest.mark.parametrize(("start", "end", "chunk"), [
    (0, None, 1 << 20), (0, None, 10_000), (1, 999_999, 65_536), (500_000, 500_001, 7), (123_456, None, 4096),
    (0, 64 * 1024, 1000), (999_999, None, 1 << 20),
])
def test_chunks_return_exactly_the_range_in_order(obj, moto_endpoint, start, end, chunk) -> None:  # noqa: ANN001
    uri, data = obj
    with _open(uri, moto_endpoint) as src:
        got = list(src.chunks(start, end, chunk))
    assert b"".join(got) == data[start:end]
    assert all(0 < len(c) <= chunk for c in got)


def test_open_pins_size_etag_and_reads_count_bytes(obj, moto_endpoint, s3, bucket) -> None:  # noqa: ANN001
    uri, data = obj
    src = _open(uri, moto_endpoint)
    assert src.size == len(data)
    assert src.local_path is None
    assert src.provenance() == {"etag": s3.head_object(Bucket=bucket, Key="in/model.tar.gz")["ETag"]}
    assert src.pread(10, 5) == data[10:15]
    assert src.pread(len(data) - 3, 10) == data[-3:]
    assert src.pread(len(data), 10) == b""
    assert src.bytes_read == 8


def test_key_ending_in_slash_means_model_tar_gz_under_it(s3, bucket, moto_endpoint) -> None:  # noqa: ANN001
    s3.put_object(Bucket=bucket, Key="models/a/model.tar.gz", Body=b"abc")
    assert _open(f"s3://{bucket}/models/a/", moto_endpoint).pread(0, 3) == b"abc"


def test_abandoned_iteration_cancels_outstanding_reads(obj, moto_endpoint) -> None:  # noqa: ANN001
    uri, data = obj
    src = _open(uri, moto_endpoint, gets_in_flight=2)
    it = src.chunks(0, None, 1000)
    assert next(it) == data[:1000]
    it.close()
    # at most the GETs that were in flight when the consumer stopped were made (not the 16 the range needs)
    assert src.requests <= 3
    src.close()


def test_overwritten_source_fails_with_one_clear_line(obj, moto_endpoint, s3, bucket) -> None:  # noqa: ANN001
    uri, data = obj
    src = _open(uri, moto_endpoint)
    it = src.chunks(0, None, 64 * 1024)
    assert next(it) == data[: 64 * 1024]
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=os.urandom(len(data)))
    with pytest.raises(RuntimeIOError, match="source object changed while it was being read") as info:
        b"".join(it)
    assert "\n" not in str(info.value)
    with pytest.raises(RuntimeIOError, match="changed"):
        src.pread(0, 10)
    with pytest.raises(RuntimeIOError, match="changed"):
        src.check_unchanged()


def test_deleted_source_counts_as_changed(obj, moto_endpoint, s3, bucket) -> None:  # noqa: ANN001
    uri, _ = obj
    src = _open(uri, moto_endpoint)
    s3.delete_object(Bucket=bucket, Key="in/model.tar.gz")
    with pytest.raises(RuntimeIOError, match="changed"):
        src.pread(0, 10)


def test_versioned_source_keeps_reading_the_pinned_version(s3, bucket, moto_endpoint) -> None:  # noqa: ANN001
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="m.tar.gz", Body=old)
    src = _open(f"s3://{bucket}/m.tar.gz", moto_endpoint)
    assert src.version_id
    assert src.provenance()["version_id"] == src.version_id
    it = src.chunks(0, None, 50_000)
    first = next(it)
    s3.put_object(Bucket=bucket, Key="m.tar.gz", Body=os.urandom(300_000))
    assert first + b"".join(it) == old
    assert src.copy_source()["VersionId"] == src.version_id


def test_missing_object_and_missing_bucket(bucket, moto_endpoint) -> None:  # noqa: ANN001
    with pytest.raises(InputNotFoundError, match=r"no object at s3://.*/nope\.tar\.gz") as info:
        _open(f"s3://{bucket}/nope.tar.gz", moto_endpoint)
    assert info.value.exit_code == 1
    with pytest.raises(InputNotFoundError, match="bucket 'no-such-bucket-here' does not exist"):
        _open("s3://no-such-bucket-here/model.tar.gz", moto_endpoint)
    with pytest.raises(InvalidInputError):
        _open("not-s3://x/y", moto_endpoint)


def test_access_denied_is_one_line_exit_3(obj, moto_endpoint) -> None:  # noqa: ANN001
    uri, _ = obj
    client = s3_object.make_client(moto_endpoint)
    client.meta.events.register("before-send.s3", deny_s3)
    with pytest.raises(RuntimeIOError, match="access denied") as info:
        S3Source.open(uri, client=client)
    assert info.value.exit_code == 3
    assert "\n" not in str(info.value)


def test_traffic_hook_counts_downloaded_bytes(obj, moto_endpoint) -> None:  # noqa: ANN001
    uri, data = obj
    before = s3_object.TRAFFIC.bytes_downloaded
    with _open(uri, moto_endpoint, get_part_size=MiB) as src:
        assert b"".join(src.chunks()) == data
    assert s3_object.TRAFFIC.bytes_downloaded - before == len(data)


def test_versioned_read_without_version_permission_falls_back_to_the_etag(s3, bucket, moto_endpoint) -> None:  # noqa: ANN001
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    data = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="v.tar.gz", Body=data)
    client = s3_object.make_client(moto_endpoint)

    def deny_versions(request: Any, **kwargs: Any) -> Any:
        return deny_s3(request) if "versionId=" in request.url else None

    client.meta.events.register("before-send.s3", deny_versions)
    src = S3Source.open(f"s3://{bucket}/v.tar.gz", client=client, get_part_size=64 * 1024)
    assert b"".join(src.chunks()) == data
    assert not src.pin_version and "VersionId" not in src.copy_source()
    assert src.provenance()["version_id"] == src.version_id


def test_a_signal_inside_an_http_call_is_not_retried_away(obj, moto_endpoint, monkeypatch) -> None:  # noqa: ANN001
    """SIGTERM raises Interrupted wherever the main thread is, often inside botocore's HTTP send, which wraps any
    ``Exception`` into a retryable HTTPClientError: the run then went on and exited 0. Interrupted must pass."""
    import urllib3

    from dummy_training.errors import Interrupted

    uri, data = obj
    with _open(uri, moto_endpoint) as src:
        real = urllib3.connectionpool.HTTPConnectionPool.urlopen
        calls: list[str] = []

        def signal_once(self, method, url, *args, **kwargs):  # noqa: ANN001, ANN202
            calls.append(method)
            if len(calls) == 1:
                raise Interrupted("interrupted by SIGTERM")
            return real(self, method, url, *args, **kwargs)

        monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", signal_once)
        with pytest.raises(Interrupted):
            src.pread(0, 100)
        assert calls == ["GET"]  # not retried
        assert src.pread(0, 100) == data[:100]
