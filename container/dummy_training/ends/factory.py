"""Open the right end for a location: a local path or an ``s3://bucket/key`` URI.

The S3 module (and boto3 with it) is imported only for an S3 location, so a local repack never loads it.
"""

from __future__ import annotations

from dummy_training.ends.base import ByteSource, Sink, is_s3_uri


def open_source(location: str, *, endpoint_url: str | None = None) -> ByteSource:
    """Open a local path or an ``s3://bucket/key`` URI as a ByteSource."""
    if is_s3_uri(location):
        from dummy_training.ends.s3_object import S3Source

        return S3Source.open(location, endpoint_url=endpoint_url)
    from dummy_training.ends.local_file import LocalFileSource

    return LocalFileSource(location)


def open_sink(location: str, *, endpoint_url: str | None = None, source: ByteSource | None = None,
              durable: bool = False) -> Sink:
    """Open a sink for a local file path or an ``s3://bucket/key`` URI (``source`` enables server-side copy;
    ``durable`` fsyncs a local file before and after publishing it; an S3 object is always durable)."""
    if is_s3_uri(location):
        from dummy_training.ends.s3_object import S3Sink

        return S3Sink.open(location, endpoint_url=endpoint_url, source=source)
    from dummy_training.ends.local_file import LocalFileSink

    return LocalFileSink(location, durable=durable)
