"""Shared fixtures: a moto server on 127.0.0.1 (S3, SageMaker, CloudWatch Logs over real HTTP) and a clean
AWS environment so no test can reach a real AWS account."""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from engine_helpers import LogLines

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # test helper modules (tests/archives.py, ...) import as top-level modules
    sys.path.insert(0, str(TESTS))

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_CLEARED = ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "DUMMY_TRAINING_OPT_ML_ROOT")


@pytest.fixture(autouse=True)
def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials, no profiles/endpoints from the developer's machine, no instance metadata lookups."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    # The parallel scan's memory limit counts this process's RSS, and pytest's is large: give it room (tests
    # of the limit itself set their own).
    monkeypatch.setenv("DUMMY_TRAINING_MEMORY_MB", "4096")
    empty = tmp_path_factory.getbasetemp() / "empty-aws-config"
    empty.touch()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True, scope="session")
def _record_aws_calls() -> Iterator[None]:
    """Every AWS operation the package's clients call, recorded for tests/test_iam_policies.py."""
    import iam_recorder

    from dummy_training import aws

    aws.CLIENT_HOOKS.append(iam_recorder.hook)
    yield
    aws.CLIENT_HOOKS.remove(iam_recorder.hook)


@pytest.fixture
def logged() -> Iterator[LogLines]:
    """What the engine logs (the CLI's logging setup stops propagation to pytest's caplog)."""
    from engine_helpers import LogLines

    handler = LogLines()
    logger = logging.getLogger("dummy_training.engine.archive")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real HTTP endpoint on 127.0.0.1 serving S3, SageMaker and CloudWatch Logs; stopped after the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str):  # noqa: ANN201 - boto3 client
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


_bucket_ids = itertools.count()


@pytest.fixture
def bucket(s3) -> str:  # noqa: ANN001
    """A fresh, uniquely named bucket on the moto server."""
    name = f"dt-test-{os.getpid()}-{next(_bucket_ids)}"
    s3.create_bucket(Bucket=name)
    return name
