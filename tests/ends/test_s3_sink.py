"""S3Sink against moto's HTTP server: copy-part planning, the small/preserve/inject commit paths, abort."""

from __future__ import annotations

import os
from typing import Any

import pytest
from s3_helpers import MiB, Recorder, object_exists, open_uploads, read

from dummy_training import __version__, contract
from dummy_training.ends import s3_object
from dummy_training.ends.local_file import LocalFileSource
from dummy_training.ends.s3_object import MAX_PART, MAX_PARTS, MIN_PART, S3Sink, S3Source, copy_part_size_for
from dummy_training.errors import InputNotFoundError, InvalidInputError, RuntimeIOError

KEY = "out/model.tar.gz"


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(21 * MiB + 12_345)


@pytest.fixture(scope="module")
def shared_bucket(moto_endpoint, payload) -> str:  # noqa: ANN001
    """One bucket holding the 21 MiB source for the whole module (uploading it per test is slow)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    name = f"dt-sink-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="in/model.tar.gz", Body=payload)
    return name


@pytest.fixture
def bucket(shared_bucket, request) -> str:  # noqa: ANN001
    global KEY
    KEY = f"out/{request.node.name}/model.tar.gz"
    return shared_bucket


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def src(bucket, moto_endpoint, rec) -> S3Source:  # noqa: ANN001
    client = rec.attach(s3_object.make_client(moto_endpoint))
    return S3Source.open(f"s3://{bucket}/in/model.tar.gz", client=client, get_part_size=4 * MiB)


def _sink(src: S3Source, bucket: str, **kwargs: Any) -> S3Sink:
    kwargs.setdefault("copy_part_size", MIN_PART)
    kwargs.setdefault("upload_part_size", MIN_PART)
    return S3Sink.open(f"s3://{bucket}/{KEY}", source=src, **kwargs)


def _meta(src: S3Source, decision: str = contract.DECISION_INJECTED) -> dict[str, str]:
    return {contract.META_DECISION: decision, contract.META_SOURCE_URI: src.location,
            contract.META_SOURCE_ETAG: src.etag.strip('"'), contract.META_VERSION: __version__}


def _assert_parts_legal(ranges: list[tuple[int, int]], last_is_copy: bool) -> None:
    assert len(ranges) <= MAX_PARTS
    for i, (a, b) in enumerate(ranges):
        assert b - a <= MAX_PART
        if i < len(ranges) - 1 or not last_is_copy:
            assert b - a >= MIN_PART, (i, a, b)


def test_growing_prefix_becomes_legal_copy_parts_then_the_uploaded_tail(src, bucket, s3, payload, rec) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    kept = 20 * MiB + 777
    for a, b in [(0, 3 * MiB), (3 * MiB, 11 * MiB), (11 * MiB, 16 * MiB + 5), (16 * MiB + 5, kept)]:
        sink.copy_range(src, a, b)  # the engine's on_kept calls, contiguous
    tail = os.urandom(100_000)
    sink.write(tail[:40_000])
    sink.write(tail[40_000:])
    assert not object_exists(s3, bucket, KEY)  # nothing visible before commit
    assert sink.commit(_meta(src)) == f"s3://{bucket}/{KEY}"
    assert read(s3, bucket, KEY) == payload[:kept] + tail
    ranges = rec.copy_ranges()
    assert ranges[0][0] == 0 and ranges[-1][1] == kept
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert len(ranges) == 4  # 5, 5, 5 MiB and the held-back 5 MiB + 777
    _assert_parts_legal(ranges, last_is_copy=False)
    assert [len(p["Body"]) for p in rec.params("UploadPart")] == [len(tail)]
    assert sink.stats()["bytes_copied"] == kept and sink.stats()["bytes_written"] == len(tail)
    head = s3.head_object(Bucket=bucket, Key=KEY)
    assert head["Metadata"] == _meta(src)
    assert open_uploads(s3, bucket, KEY) == []


def test_copy_parts_start_while_the_prefix_grows(src, bucket, rec) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 4 * MiB)
    assert rec.copy_ranges() == []  # not yet: 5 MiB must stay behind for the last copy part
    sink.copy_range(src, 4 * MiB, 10 * MiB)
    sink._drain(cancel=False)  # noqa: SLF001 - let the background copy land
    assert rec.copy_ranges() == [(0, 5 * MiB)]
    sink.abort()


def test_prefix_under_the_part_minimum_is_read_and_uploaded_whole(src, bucket, s3, payload, rec) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 2 * MiB)
    sink.write(b"tail bytes")
    sink.commit(_meta(src))
    assert read(s3, bucket, KEY) == payload[: 2 * MiB] + b"tail bytes"
    assert "UploadPartCopy" not in rec.ops() and "CompleteMultipartUpload" not in rec.ops()
    assert [len(p["Body"]) for p in rec.params("PutObject")] == [2 * MiB + 10]
    assert s3.head_object(Bucket=bucket, Key=KEY)["Metadata"] == _meta(src)
    assert open_uploads(s3, bucket, KEY) == []


def test_preserve_is_one_copy_object_with_the_committed_metadata(src, bucket, s3, payload, rec) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    for a in range(0, src.size, 6 * MiB):  # the scan grows the prefix to the whole object
        sink.copy_range(src, a, min(a + 6 * MiB, src.size))
    meta = _meta(src, contract.DECISION_PRESERVED)
    sink.commit(meta)
    assert read(s3, bucket, KEY) == payload
    (copy,) = rec.params("CopyObject")
    assert copy["MetadataDirective"] == "REPLACE" and copy["CopySourceIfMatch"] == src.etag
    assert s3.head_object(Bucket=bucket, Key=KEY)["Metadata"] == meta
    assert "UploadPart" not in rec.ops() and "PutObject" not in rec.ops()
    assert open_uploads(s3, bucket, KEY) == []


def test_whole_source_reached_starts_no_more_copy_parts(src, bucket, s3, payload, rec) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 6 * MiB)  # under copy part + minimum: nothing started yet
    sink.copy_range(src, 6 * MiB, src.size)  # the engine's on_kept(size): a preserve
    sink.commit(_meta(src, contract.DECISION_PRESERVED))
    assert read(s3, bucket, KEY) == payload
    assert "UploadPartCopy" not in rec.ops()  # 3 parts were started here before (5 + 5 + 5 MiB)
    assert rec.ops().count("CopyObject") == 1
    assert open_uploads(s3, bucket, KEY) == []


def test_data_written_after_the_whole_source_still_gives_the_concatenation(src, bucket, s3, payload) -> None:  # noqa: ANN001
    sink = _sink(src, bucket, parts_in_flight=1)  # one worker: parts queue up, so some get cancelled
    sink.copy_range(src, 0, 16 * MiB)
    sink.copy_range(src, 16 * MiB, src.size)
    sink.write(b"not a preserve after all")
    sink.commit(_meta(src))
    assert read(s3, bucket, KEY) == payload + b"not a preserve after all"
    assert s3.head_object(Bucket=bucket, Key=KEY)["Metadata"] == _meta(src)
    assert open_uploads(s3, bucket, KEY) == []


def test_whole_source_over_the_copy_object_limit_switches_metadata_before_commit(src, bucket, s3, payload, rec,  # noqa: ANN001
                                                                                  monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(s3_object, "MAX_COPY_OBJECT", 10 * MiB)  # the 21 MiB source counts as over 5 GiB
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 12 * MiB)
    assert rec.ops().count("CreateMultipartUpload") == 1
    sink.copy_range(src, 12 * MiB, src.size)
    assert rec.ops().count("CreateMultipartUpload") == 2  # rebuilt now with the preserve metadata, not at commit
    meta = _meta(src, contract.DECISION_PRESERVED)
    sink.commit(meta)
    assert rec.ops().count("CreateMultipartUpload") == 2
    assert "CopyObject" not in rec.ops()
    assert read(s3, bucket, KEY) == payload
    assert s3.head_object(Bucket=bucket, Key=KEY)["Metadata"] == meta
    _assert_parts_legal(rec.copy_ranges(), last_is_copy=True)
    assert open_uploads(s3, bucket, KEY) == []


def test_abort_after_the_switch_leaves_neither_upload(src, bucket, s3, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(s3_object, "MAX_COPY_OBJECT", 10 * MiB)
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 12 * MiB)
    sink.copy_range(src, 12 * MiB, src.size)  # switches to a second upload; the first is retired later
    assert len(open_uploads(s3, bucket, KEY)) == 2
    sink.abort()
    assert open_uploads(s3, bucket, KEY) == []
    assert not object_exists(s3, bucket, KEY)


def test_other_metadata_rebuilds_the_copy_parts_server_side(src, bucket, s3, payload, rec) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 17 * MiB)
    sink.write(b"x" * 1000)
    meta = {**_meta(src), "extra": "value"}
    sink.commit(meta)
    assert read(s3, bucket, KEY) == payload[: 17 * MiB] + b"x" * 1000
    assert s3.head_object(Bucket=bucket, Key=KEY)["Metadata"] == meta
    assert rec.ops().count("CreateMultipartUpload") == 2
    assert sum(len(p["Body"]) for p in rec.params("UploadPart")) == 1000
    assert open_uploads(s3, bucket, KEY) == []


def test_large_writes_stream_as_parts_and_metadata_is_fixed_after(src, bucket, s3, rec) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    data = os.urandom(13 * MiB + 5)
    for i in range(0, len(data), MiB):
        sink.write(data[i:i + MiB])
    meta = _meta(src, contract.DECISION_PRESERVED)  # e.g. a plain tar re-encoded, preserved
    sink.commit(meta)
    assert read(s3, bucket, KEY) == data
    sizes = [len(p["Body"]) for p in rec.params("UploadPart")]
    assert sum(sizes) == len(data) and all(s >= MIN_PART for s in sizes[:-1]) and len(sizes) >= 2
    assert s3.head_object(Bucket=bucket, Key=KEY)["Metadata"] == meta


def test_reset_discards_what_was_appended(src, bucket, s3) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 12 * MiB)
    sink.reset()
    sink.write(b"re-encoded")
    sink.commit(_meta(src))
    assert read(s3, bucket, KEY) == b"re-encoded"


def test_local_file_source_is_uploaded(tmp_path, bucket, s3, moto_endpoint) -> None:  # noqa: ANN001
    data = os.urandom(7 * MiB + 3)
    path = tmp_path / "model.tar.gz"
    path.write_bytes(data)
    with LocalFileSource(path) as local:
        sink = S3Sink.open(f"s3://{bucket}/{KEY}", endpoint_url=moto_endpoint, source=local,
                           upload_part_size=MIN_PART)
        sink.copy_range(local, 0, local.size - 100)
        sink.write(b"tail")
        sink.commit({"k": "v"})
    assert read(s3, bucket, KEY) == data[:-100] + b"tail"
    assert sink.stats()["bytes_written"] == len(data) - 100 + 4
    assert s3.head_object(Bucket=bucket, Key=KEY)["Metadata"] == {"k": "v"}


def test_abort_leaves_no_object_and_no_upload(src, bucket, s3) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 20 * MiB)
    sink.write(os.urandom(11 * MiB))
    assert len(open_uploads(s3, bucket, KEY)) == 1
    sink.abort()
    sink.abort()  # idempotent
    assert open_uploads(s3, bucket, KEY) == []
    assert not object_exists(s3, bucket, KEY)
    with pytest.raises(RuntimeError):
        sink.write(b"x")


def test_abort_after_commit_keeps_the_object(src, bucket, s3) -> None:  # noqa: ANN001
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 8 * MiB)
    sink.commit(_meta(src))
    sink.abort()
    assert object_exists(s3, bucket, KEY)


def test_source_overwritten_before_commit_publishes_nothing(src, bucket, s3) -> None:  # noqa: ANN001
    s3.copy_object(Bucket=bucket, Key="in/changing.tar.gz", CopySource={"Bucket": bucket, "Key": "in/model.tar.gz"})
    src = S3Source.open(f"s3://{bucket}/in/changing.tar.gz", client=src.client)
    sink = _sink(src, bucket)
    sink.copy_range(src, 0, 15 * MiB)
    sink.write(b"tail")
    s3.put_object(Bucket=bucket, Key="in/changing.tar.gz", Body=b"new content")
    with pytest.raises(RuntimeIOError, match="source object changed"):
        sink.commit(_meta(src))
    assert not object_exists(s3, bucket, KEY)
    assert open_uploads(s3, bucket, KEY) == []


def test_output_equal_to_input_is_refused(src, bucket) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInputError, match="is the input model"):
        S3Sink.open(src.location, source=src)


def test_missing_output_bucket_is_exit_1(src) -> None:  # noqa: ANN001
    with pytest.raises(InputNotFoundError, match="output bucket 'no-such-output-bucket' does not exist") as info:
        S3Sink.open("s3://no-such-output-bucket/x/model.tar.gz", source=src)
    assert info.value.exit_code == 1


@pytest.mark.parametrize(("size", "configured"), [
    (10 * MiB, None), (5 << 30, 5 * MiB), (100 << 30, 5 * MiB), (1 << 40, None), (5 << 40, 8 * MiB),
])
def test_copy_part_size_obeys_the_limits(size: int, configured: int | None) -> None:
    part = copy_part_size_for(size, configured)
    assert MIN_PART <= part <= MAX_PART - MIN_PART
    assert -(-size // part) + 1 <= MAX_PARTS
    assert part >= (configured or s3_object.COPY_PART_SIZE)
