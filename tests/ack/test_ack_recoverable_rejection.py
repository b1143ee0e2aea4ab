"""How the launcher reads ACK.Recoverable: the controller (sagemaker-controller v1.9.1, generator.yaml
``terminal_codes``) counts only ResourceNotFound, ResourceInUse, InvalidParameterCombination,
InvalidParameterValue and MissingParameter as terminal, so SageMaker's own ValidationException on
CreateProcessingJob comes back as ACK.Recoverable and is retried for ever: before the job exists that is a
rejection (exit 5); any other recoverable error is waited through."""

from __future__ import annotations

from typing import Any

import pytest

from dummy_training.ack.launcher import State, observe

ARN = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/j"
VALIDATION = "api error ValidationException: 1 validation error detected: Value 'ml.m5.huge' at 'x' failed"
LIMIT = "api error ResourceLimitExceeded: The account-level service limit is 4 Instances"


def resource(message: str, *, arn: str | None = None, job_status: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "ACK.Recoverable", "status": "True", "message": message},
                                             {"type": "Ready", "status": "False", "reason": "ACK.Recoverable",
                                              "message": message}]}
    if arn:
        status["ackResourceMetadata"] = {"arn": arn, "ownerAccountID": "123456789012", "region": "us-east-1"}
    if job_status:
        status["processingJobStatus"] = job_status
    return {"status": status}


def test_a_validation_exception_before_the_job_exists_is_a_rejection() -> None:
    seen = observe(resource(VALIDATION))
    assert seen.state is State.REJECTED and seen.message == VALIDATION


@pytest.mark.parametrize("obj", [
    resource(LIMIT),  # a quota: retrying can succeed
    resource(VALIDATION, arn=ARN, job_status="InProgress"),  # the job exists: a read error, not a rejection
], ids=["limit", "job-exists"])
def test_other_recoverable_errors_are_waited_through(obj: dict[str, Any]) -> None:
    seen = observe(obj)
    assert seen.state is State.PENDING and seen.message.startswith("controller is retrying: api error")
