"""boto3 clients with the project's retry policy, S3 URI parsing, and AWS errors turned into one-line errors.

Every AWS call in the package goes through ``client()`` (adaptive retries for throttling and transient
errors) and every botocore exception a user can cause is mapped by ``translate_error`` to a
``DummyTrainingError`` with its exit code: missing object/bucket -> 1, invalid request -> 2,
credentials/region/access/network -> 3.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from dummy_training import __version__
from dummy_training.errors import (
    DummyTrainingError,
    InputNotFoundError,
    InvalidInputError,
    RuntimeIOError,
)

MAX_ATTEMPTS = 8
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "NoSuchUpload", "ResourceNotFound"}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation",
                 "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
                 "InvalidClientTokenId", "UnrecognizedClientException"}
_INVALID_CODES = {"ValidationException", "ValidationError", "InvalidRequest", "InvalidArgument",
                  "InvalidBucketName", "MalformedPolicyDocument"}
_CHANGED_CODES = {"PreconditionFailed", "412"}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); key may be empty for ``s3://bucket`` or ``s3://bucket/``."""
    if not uri.startswith("s3://"):
        raise InvalidInputError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise InvalidInputError(f"S3 URI has no bucket: {uri!r}")
    return bucket, key


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def join_s3(prefix: str, *parts: str) -> str:
    """Join an s3:// prefix and path parts with single slashes."""
    out = prefix.rstrip("/")
    for p in parts:
        out += "/" + p.strip("/")
    return out


def session(region: str | None = None, assume_role_arn: str | None = None,
            session_name: str = "dummy-training") -> Any:
    """A boto3 Session from the standard credential chain, optionally assuming ``assume_role_arn``."""
    import boto3

    base = _base_session(region)
    if not assume_role_arn:
        return base
    sts = _hooked(base.client("sts", config=_config()))
    with translating(f"assume role {assume_role_arn}"):
        creds = sts.assume_role(RoleArn=assume_role_arn, RoleSessionName=session_name)["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=base.region_name,
    )


_base_sessions: dict[tuple, Any] = {}
_base_sessions_lock = threading.Lock()


def _base_session(region: str | None) -> Any:
    """One boto3 Session per region and AWS_* environment: a new Session reloads every service model
    (~0.3 s per client), and the environment key keeps changed credentials or endpoints from being reused."""
    import boto3

    key = (region or "", tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    with _base_sessions_lock:
        if key not in _base_sessions:
            _base_sessions[key] = boto3.Session(region_name=region or None)
        return _base_sessions[key]


def _config(**overrides: Any) -> Any:
    from botocore.config import Config

    return Config(
        retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS},
        user_agent_extra=f"dummy-training/{__version__}",
        **overrides,
    )


#: Called with every client ``client()`` (and the assume-role STS client) creates, before it is returned: the
#: one place to watch what the code calls (the tests record every operation through botocore's ``before-call``
#: event to check the IAM policies in docs/iam/ grant it).
CLIENT_HOOKS: list[Callable[[Any], None]] = []


def _hooked(new_client: Any) -> Any:
    for hook in CLIENT_HOOKS:
        hook(new_client)
    return new_client


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
           boto_session: Any = None, max_pool_connections: int = 10) -> Any:
    """A boto3 client with adaptive retries. ``endpoint_url`` None leaves boto3's own resolution in place
    (including ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``)."""
    from botocore.exceptions import NoRegionError

    sess = boto_session or session(region)
    kwargs: dict[str, Any] = {"config": _config(max_pool_connections=max_pool_connections)}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    try:
        return _hooked(sess.client(service, **kwargs))
    except NoRegionError:
        if service == "s3":  # S3 works without a region (us-east-1 global endpoint)
            kwargs["region_name"] = "us-east-1"
            return _hooked(sess.client(service, **kwargs))
        raise RuntimeIOError(
            f"no AWS region configured for {service}: pass --region or set AWS_REGION / AWS_DEFAULT_REGION"
        ) from None


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    if not code:
        code = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code


def translate_error(exc: BaseException, action: str) -> DummyTrainingError:
    """Map a botocore/boto3 exception raised while doing ``action`` to a one-line DummyTrainingError."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        PartialCredentialsError,
    )

    if isinstance(exc, DummyTrainingError):
        return exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return RuntimeIOError(
            f"{action}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, "
            "IRSA on EKS, or a Kubernetes secret via use_secret_as_env)"
        )
    if isinstance(exc, NoRegionError):
        return RuntimeIOError(f"{action}: no AWS region configured: pass --region or set AWS_REGION")
    if isinstance(exc, EndpointConnectionError):
        return RuntimeIOError(f"{action}: cannot reach endpoint: {exc}")
    if isinstance(exc, ParamValidationError):
        return InvalidInputError(f"{action}: invalid request: {exc}".replace("\n", " "))
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code in _NOT_FOUND_CODES:
            return InputNotFoundError(f"{action}: not found ({code}): {message}")
        if code in _DENIED_CODES:
            return RuntimeIOError(f"{action}: access denied ({code}): {message}")
        if code in _CHANGED_CODES:
            return RuntimeIOError(f"{action}: the source object changed while it was being read ({code})")
        if code in _INVALID_CODES:
            return InvalidInputError(f"{action}: {code}: {message}")
        return RuntimeIOError(f"{action}: {code}: {message}")
    if isinstance(exc, OSError):
        return RuntimeIOError(f"{action}: {exc}")
    if isinstance(exc, _transfer_gave_up()):  # boto3's transfer retried reading a body (cut connections), gave up
        return RuntimeIOError(f"{action}: {exc.last_exception} (retried, gave up)")
    return RuntimeIOError(f"{action}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def translating(action: str) -> Iterator[None]:
    """``with translating("read s3://b/k"): ...`` turns botocore errors into DummyTrainingError."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError, Boto3Error, *_transfer_gave_up()) as exc:
        raise translate_error(exc, action) from exc


def _transfer_gave_up() -> tuple[type[Exception], ...]:
    """What boto3's managed transfers raise when their retries of a body ran out (``download_fileobj`` raises
    s3transfer's own, ``download_file`` boto3's copy of it); both carry ``last_exception``."""
    import boto3.exceptions
    import s3transfer.exceptions

    return boto3.exceptions.RetriesExceededError, s3transfer.exceptions.RetriesExceededError


def default_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
