"""The waiter, on ProcessingJob resources in every state the ACK SageMaker controller reports
(tests/data/ack/status: written for this project, modelled on the controller's testdata; the controller sets
ACK.ResourceSynced True once the job is Completed, Stopped or Failed, and copies failureReason from
DescribeProcessingJob)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ack_reference
import pytest

from dummy_training.ack import launcher as ack_launcher
from dummy_training.ack.launcher import State, WaitPolicy
from dummy_training.errors import Interrupted, JobFailedError, JobStoppedError, RuntimeIOError

ARN = "arn:aws:sagemaker:us-west-2:123456789012:processing-job/example-processing-job"


def fx(name: str) -> dict[str, Any]:
    return ack_reference.fixture(name)


class ApiError(Exception):
    def __init__(self, status: int | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = '{"message": "scripted"}'


class Scripted(ack_launcher.ProcessingJobResource):
    """A resource whose GETs return the scripted objects in turn (the last repeats); exceptions are raised."""

    def __init__(self, objects: Iterable[Any]) -> None:
        super().__init__(api=None, namespace="ns", name="example-processing-job")
        self.objects = list(objects)
        self.gets = 0
        self.deleted = False

    def get(self) -> dict[str, Any] | None:
        self.gets += 1
        item = self.objects.pop(0) if len(self.objects) > 1 else self.objects[0]
        if isinstance(item, BaseException):
            raise item
        return item

    def delete(self) -> bool:
        self.deleted = True
        self.objects = [None]
        return True


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


FAST = WaitPolicy(interval=1, max_interval=4, backoff=2)


def wait(objects: Iterable[Any], policy: WaitPolicy = FAST) -> tuple[ack_launcher.Observation, Scripted, FakeTime]:
    res, t = Scripted(objects), FakeTime()
    seen, obj = ack_launcher.wait(res, policy, sleep=t.sleep, clock=t.clock)
    assert observed_is_returned(seen, obj)
    return seen, res, t


def observed_is_returned(seen: ack_launcher.Observation, obj: dict[str, Any]) -> bool:
    return ack_launcher.observe(obj) == seen


# ----------------------------------------------------------------------------------------------- observe()
OBSERVED = {  # fixture -> (state, processingJobStatus)
    "created.yaml": (State.PENDING, None),
    "in_progress.yaml": (State.PENDING, "InProgress"),
    "in_progress_terminal_false.yaml": (State.PENDING, "InProgress"),
    "recoverable.yaml": (State.PENDING, None),
    "stopping.yaml": (State.PENDING, "Stopping"),
    "completed.yaml": (State.COMPLETED, "Completed"),
    "failed.yaml": (State.FAILED, "Failed"),
    "stopped.yaml": (State.STOPPED, "Stopped"),
    "terminal.yaml": (State.REJECTED, None),
}


@pytest.mark.parametrize("name", sorted(OBSERVED))
def test_observe_status_fixtures(name: str) -> None:
    seen = ack_launcher.observe(fx(name))
    assert (seen.state, seen.job_status) == OBSERVED[name]


def test_status_fixtures_cover_every_state_and_are_valid_resources() -> None:
    assert ack_reference.fixture_names() == sorted(OBSERVED)  # a new fixture gets its expected state above
    assert {state for state, _ in OBSERVED.values()} == set(State)
    for name in OBSERVED:
        assert ack_reference.errors(fx(name)) == [], name  # the CRD's status schema, unknown fields forbidden


def test_resource_without_status_is_pending() -> None:
    seen = ack_launcher.observe(ack_reference.load("processing-job.yaml"))  # just applied, no status yet
    assert (seen.state, seen.job_status, seen.arn) == (State.PENDING, None, None)


def test_completed_without_synced_condition_is_not_yet_success() -> None:
    obj = fx("completed.yaml")
    obj["status"]["conditions"][0]["status"] = "False"
    assert ack_launcher.observe(obj).state is State.PENDING


def test_recoverable_condition_is_reported_but_waited_through() -> None:
    seen = ack_launcher.observe(fx("recoverable.yaml"))
    assert seen.state is State.PENDING
    assert seen.message == ("controller is retrying: ServiceUnavailable: SageMaker is unavailable status code: 503, "
                            "request id: example-1")  # one line


# --------------------------------------------------------------------------------------------------- wait()
def test_completed_at_once() -> None:
    seen, res, t = wait([fx("completed.yaml")])
    assert seen.state is State.COMPLETED and seen.arn == ARN
    assert res.gets == 1 and t.sleeps == []


def test_in_progress_then_completed_with_backoff() -> None:
    seen, res, t = wait([fx("created.yaml"),
                         fx("in_progress.yaml"),
                         fx("recoverable.yaml"),
                         fx("in_progress_terminal_false.yaml"),
                         fx("in_progress.yaml"),
                         fx("completed.yaml")])
    assert seen.state is State.COMPLETED
    assert res.gets == 6
    assert t.sleeps == [1, 2, 4, 4, 4]  # interval doubles, capped at max_interval


def test_failed_reports_failure_reason() -> None:
    with pytest.raises(JobFailedError, match="AlgorithmError: no model.tar.gz found"):
        wait([fx("in_progress.yaml"), fx("failed.yaml")])


def test_stopping_then_stopped() -> None:
    with pytest.raises(JobStoppedError, match="was stopped"):
        wait([fx("in_progress.yaml"), fx("stopping.yaml"), fx("stopped.yaml")])


def test_terminal_condition_reports_sagemaker_message() -> None:
    with pytest.raises(JobFailedError, match="rejected.*InvalidParameterValue: The processing job name must not "
                                             "include a special character"):
        wait([fx("terminal.yaml")])


def test_deleted_while_waiting() -> None:
    with pytest.raises(JobStoppedError, match="deleted while waiting"):
        wait([fx("in_progress.yaml"), None])


def test_transient_api_errors_are_retried_then_fatal() -> None:
    seen, res, _t = wait([ApiError(503), ApiError(None), ApiError(429), fx("completed.yaml")])
    assert seen.state is State.COMPLETED and res.gets == 4
    with pytest.raises(RuntimeIOError, match="503"):
        wait([ApiError(503)], WaitPolicy(interval=1, max_transient_errors=3))
    with pytest.raises(RuntimeIOError, match="denied access.*rbac.yaml"):
        wait([fx("in_progress.yaml"), ApiError(403)])


def test_signal_during_a_request_is_not_taken_for_an_api_error() -> None:
    # SIGTERM raises Interrupted wherever the main thread is, including inside the HTTP call of a poll
    with pytest.raises(Interrupted):
        wait([fx("in_progress.yaml"), Interrupted("interrupted by SIGTERM")])


def test_timeout_is_raised_for_the_runner_to_clean_up() -> None:
    res, t = Scripted([fx("in_progress.yaml")]), FakeTime()
    with pytest.raises(ack_launcher._Timeout):
        ack_launcher.wait(res, WaitPolicy(interval=10, max_interval=10, timeout=35), sleep=t.sleep, clock=t.clock)
    assert t.now == 35 and t.sleeps == [10, 10, 10, 5]  # the last sleep ends at the deadline


# ------------------------------------------------------------------------------------- delete_and_wait()
def test_delete_and_wait_until_gone_and_never_raises() -> None:
    res, t = Scripted([fx("stopping.yaml")]), FakeTime()
    ack_launcher.delete_and_wait(res, WaitPolicy(interval=1, delete_wait=10), sleep=t.sleep, clock=t.clock)
    assert res.deleted and res.gets == 1  # Scripted.delete makes the next GET answer "gone"

    class Stuck(Scripted):  # the finalizer never finishes: give up after delete_wait, quietly
        def delete(self) -> bool:
            self.deleted = True
            return True

    stuck, t = Stuck([fx("stopping.yaml")]), FakeTime()
    ack_launcher.delete_and_wait(stuck, WaitPolicy(interval=1, delete_wait=10), sleep=t.sleep, clock=t.clock)
    assert stuck.deleted and t.now >= 10

    class Broken(Scripted):
        def delete(self) -> bool:
            raise ApiError(403)

    ack_launcher.delete_and_wait(Broken([None]), WaitPolicy())  # logged, not raised
