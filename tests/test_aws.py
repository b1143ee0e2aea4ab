"""aws.py: S3 URI handling and the mapping of AWS errors to one-line errors with exit codes."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from dummy_training import aws
from dummy_training.errors import (
    EXIT_INVALID_INPUT,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    InvalidInputError,
)


def _client_error(code: str, message: str = "msg", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(("uri", "expected"), [
    ("s3://bucket/key/model.tar.gz", ("bucket", "key/model.tar.gz")),
    ("s3://bucket", ("bucket", "")),
    ("s3://bucket/", ("bucket", "")),
])
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert aws.parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["/local/path", "s3://", "http://bucket/key"])
def test_parse_s3_uri_rejects(uri: str) -> None:
    with pytest.raises(InvalidInputError):
        aws.parse_s3_uri(uri)


def test_join_s3() -> None:
    assert aws.join_s3("s3://b/prefix/", "/job/", "input") == "s3://b/prefix/job/input"


@pytest.mark.parametrize(("exc", "code", "needle"), [
    (_client_error("NoSuchKey", status=404), EXIT_NOT_FOUND, "not found"),
    (_client_error("404", "Not Found", 404), EXIT_NOT_FOUND, "not found"),
    (_client_error("NoSuchBucket", status=404), EXIT_NOT_FOUND, "not found"),
    (_client_error("AccessDenied", status=403), EXIT_RUNTIME, "access denied"),
    (_client_error("ValidationException", "bad role"), EXIT_INVALID_INPUT, "bad role"),
    (_client_error("PreconditionFailed", status=412), EXIT_RUNTIME, "changed"),
    (_client_error("ThrottlingException"), EXIT_RUNTIME, "ThrottlingException"),
    (NoCredentialsError(), EXIT_RUNTIME, "no AWS credentials"),
    (NoRegionError(), EXIT_RUNTIME, "no AWS region"),
])
def test_translate_error(exc: Exception, code: int, needle: str) -> None:
    err = aws.translate_error(exc, "read s3://b/k")
    assert err.exit_code == code
    assert needle in str(err)
    assert "\n" not in str(err)
    assert str(err).startswith("read s3://b/k")


def test_translating_context_manager_raises_mapped_error() -> None:
    with pytest.raises(InvalidInputError, match="ValidationException"), aws.translating("create job"):
        raise _client_error("ValidationException")


def test_client_uses_adaptive_retries_and_endpoint(moto_endpoint: str) -> None:
    c = aws.client("s3", endpoint_url=moto_endpoint)
    assert c.meta.endpoint_url == moto_endpoint
    assert c.meta.config.retries["mode"] == "adaptive"
    c.create_bucket(Bucket="dt-aws-client-check")
    assert "dt-aws-client-check" in [b["Name"] for b in c.list_buckets()["Buckets"]]


def test_client_without_region_for_sagemaker_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(Exception) as info:
        aws.client("sagemaker")
    assert getattr(info.value, "exit_code", None) == EXIT_RUNTIME
    assert "region" in str(info.value)
