"""Run the repack step as a SageMaker Processing job: stage, create (or re-attach), wait, stream logs, stop.

The launcher runs in a KFP pod (or on a laptop) and does what the removed AWS SageMaker components did badly:

- **Re-attach, no duplicates, never to another job.** The job name is derived from the KFP run and task by
  default (see ``default_job_name``), so a retried or restarted launcher finds its job. Before creating anything
  it describes the name and compares the job with the CreateProcessingJob request this launch would send
  (``processing_job.request_difference``: image, entrypoint and arguments, inputs and output URIs, environment,
  resources, role, network, stopping condition; staged local inputs are named by their SHA-256, so another
  file is another request). Another request under the name -> ``InvalidInputError`` (exit 2) naming the job and
  the first field that differs, nothing created or delivered. The same request: ``Completed`` -> the job is
  reused (no new job, its output is delivered); ``InProgress`` / ``Stopping`` -> it is waited on; ``Failed`` /
  ``Stopped`` -> for a derived name the next attempt name (``<name>-a2``, ``-a3``, ... up to ``MAX_ATTEMPTS``)
  is tried the same way, so a KFP retry of a failed task runs again instead of failing forever; for an explicit
  ``job_name`` the launcher stops with a line asking for a new name (you named that job, it already ran and
  failed). ``ResourceInUse`` on create (a concurrent twin) re-attaches, after the same comparison.
- **Check before billing.** Role ARN, names and every S3 input are checked (``staging.stage_inputs``) before
  CreateProcessingJob; a missing object creates no job. Every local model is judged by the engine first
  (``step.judge``): a hostile archive (exit 2), or one given no hyperparameters without a root
  hyperparameters.json (exit 1), stages nothing.
- **Dry run.** ``dry_run(config)`` is the request, with no AWS call (``dummy-training sagemaker --dry-run``).
- **Logs while it runs.** CloudWatch streams ``/aws/sagemaker/ProcessingJobs/<job-name>/...`` are paged with
  ``nextForwardToken`` into the pod log on every poll and once more at the end. The console URL is printed once the job
  exists (found or created).
- **Ends.** Completed -> result; Failed -> ``JobFailedError`` with SageMaker's FailureReason; Stopped ->
  ``JobStoppedError`` (no loop); the overall timeout (default ``max_runtime_seconds`` + ``TIMEOUT_MARGIN``) stops
  the job then raises ``JobStoppedError``.
- **Cancellation.** ``errors.Interrupted`` (the CLI turns SIGTERM/SIGINT into it) stops the job and waits, for
  at most ``stop_wait_seconds``, for Stopping/Stopped, then re-raises.

Every AWS call goes through ``aws.client`` (adaptive retries: throttling and transient errors are retried by
botocore) and ``aws.translating`` (one-line errors with exit codes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dummy_training import aws, contract
from dummy_training.errors import (
    DummyTrainingError,
    Interrupted,
    InvalidInputError,
    JobFailedError,
    JobStoppedError,
    RuntimeIOError,
)
from dummy_training.sagemaker import processing_job, staging
from dummy_training.sagemaker.processing_job import JobSettings, ProcessingJobSpec
from dummy_training.sagemaker.report import JobSummary, console_url, logs_console_url

log = logging.getLogger(__name__)
remote_log = logging.getLogger("dummy_training.remote")

JOB_NAME_PREFIX = "dummy-training"
#: Attempt suffixes for derived names: ``<name>``, ``<name>-a2``, ... ``<name>-a<MAX_ATTEMPTS>``.
MAX_ATTEMPTS = 9
_ATTEMPT_SUFFIX_LEN = 3  # "-a9"
TIMEOUT_MARGIN = 1800  # provisioning, image pull and output upload are outside MaxRuntimeInSeconds
STATUS_COMPLETED = "Completed"
STATUS_FAILED = "Failed"
STATUS_STOPPED = "Stopped"
STATUS_IN_PROGRESS = "InProgress"
STATUS_STOPPING = "Stopping"
TERMINAL = (STATUS_COMPLETED, STATUS_FAILED, STATUS_STOPPED)


def default_job_name(*parts: str) -> str:
    """Deterministic name from e.g. the KFP run id and task id (leaves room for an attempt suffix)."""
    return processing_job.job_name(JOB_NAME_PREFIX, *parts,
                                   max_len=processing_job.MAX_JOB_NAME - _ATTEMPT_SUFFIX_LEN)


def unique_job_name() -> str:
    """A fresh name for a run with no KFP identity (the CLI without --job-name)."""
    return processing_job.job_name(JOB_NAME_PREFIX, time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
                                   os.urandom(3).hex())


# ----------------------------------------------------------------------------------------------- config
@dataclass(kw_only=True)
class LaunchConfig(JobSettings):
    """Everything the launcher needs (the job settings plus where the inputs are and how to wait); field names
    are the CLI flags and the component inputs."""

    model: str
    role_arn: str
    image_uri: str
    s3_prefix: str | None = None
    s3_output_prefix: str | None = None
    hyperparameters: str | None = None
    hyperparameters_json: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    assume_role_arn: str | None = None
    job_name: str | None = None
    #: parts the default job name is derived from (KFP run id, task id); ignored when job_name is given
    job_name_parts: tuple[str, ...] = ()
    #: download the repacked model.tar.gz into this directory when the job completed
    model_output_dir: str | None = None
    #: overall wait before the job is stopped; None -> max_runtime_seconds + TIMEOUT_MARGIN
    timeout_seconds: float | None = None
    poll_interval: float = 5.0
    max_poll_interval: float = 30.0
    stop_wait_seconds: float = 300.0
    stream_logs: bool = True

    def staging_base(self) -> str:
        base = self.s3_prefix or self.s3_output_prefix
        if not base:
            raise InvalidInputError("an S3 prefix is required: pass --s3-prefix (staging and output) "
                                    "or --s3-output-prefix")
        aws.parse_s3_uri(base)
        return base

    def output_base(self) -> str:
        return self.s3_output_prefix or self.staging_base()


@dataclass
class Clients:
    sagemaker: Any
    s3: Any
    logs: Any
    region: str


def make_clients(config: LaunchConfig) -> Clients:
    region = config.region or aws.default_region()  # boto3 alone reads AWS_DEFAULT_REGION, not AWS_REGION
    sess = aws.session(region, config.assume_role_arn)
    sm = aws.client("sagemaker", region=region, endpoint_url=config.endpoint_url, boto_session=sess)
    return Clients(
        sagemaker=sm,
        s3=aws.client("s3", region=region, endpoint_url=config.endpoint_url, boto_session=sess),
        logs=aws.client("logs", region=region, endpoint_url=config.endpoint_url, boto_session=sess),
        region=sm.meta.region_name,
    )


@dataclass
class LaunchResult:
    job_name: str
    job_arn: str
    model_s3_uri: str
    status: str
    #: True when an already Completed job was found and reused (no new job ran)
    reused: bool = False
    #: local path of the downloaded model.tar.gz, when model_output_dir was given
    local_model_path: str | None = None
    #: what the report shows about the job (see sagemaker.report)
    job: JobSummary | None = None

    def metadata(self) -> dict[str, str]:
        return {contract.OUTPUT_MODEL_S3_URI: self.model_s3_uri, "job_name": self.job_name,
                contract.OUTPUT_JOB_ARN: self.job_arn}


# ------------------------------------------------------------------------------------------------ spec
def build_spec(config: LaunchConfig, job_name: str, staged: staging.StagedInputs | None = None) -> ProcessingJobSpec:
    """The ProcessingJobSpec for ``job_name``; without ``staged`` the model URI is a placeholder (validation)."""
    model_uri = staged.model_s3_uri if staged else "s3://placeholder/model.tar.gz"
    settings = {f.name: _own_copy(getattr(config, f.name)) for f in fields(JobSettings)}
    for key in ("volume_kms_key_id", "output_kms_key_id"):  # an empty input means no key
        settings[key] = settings[key] or None
    return ProcessingJobSpec(
        job_name=job_name,
        role_arn=config.role_arn,
        image_uri=config.image_uri,
        model_s3_uri=model_uri,
        output_s3_uri=output_prefix_for(config, job_name),
        hyperparameters_s3_uri=staged.hyperparameters_s3_uri if staged else None,
        report_s3_uri=report_prefix_for(config, job_name),
        **settings,
    )


def _own_copy(value: Any) -> Any:
    """Lists (or tuples) and dicts copied, so the spec shares no mutable state with the config."""
    if isinstance(value, list | tuple):
        return list(value)
    return dict(value) if isinstance(value, dict) else value


def output_prefix_for(config: LaunchConfig, job_name: str) -> str:
    """``<s3_output_prefix or s3_prefix>/<job-name>/output``: one output location per job, never shared."""
    return aws.join_s3(config.output_base(), job_name, "output")


def report_prefix_for(config: LaunchConfig, job_name: str) -> str:
    """``<s3_output_prefix or s3_prefix>/<job-name>/report``: the job's own report and result, beside (never
    inside) its output prefix, so a consumer of the output prefix finds only model.tar.gz there."""
    return aws.join_s3(config.output_base(), job_name, "report")


@dataclass(frozen=True)
class JobReportLocation:
    """Where a job writes its own report (``report.md``) and result (``result.json``); None: it writes none."""

    report_uri: str | None
    result_uri: str | None


def job_report_location(arguments: list[str], outputs: list[tuple[str, str]]) -> JobReportLocation:
    """Read from a job's own request: its container ``arguments`` and its outputs as (LocalPath, S3Uri) pairs.

    The value after ``--report`` / ``--result-json`` is either an ``s3://`` URI (s3_direct mode) or a container
    path in an output's LocalPath, which SageMaker uploads under that output's S3Uri (staged mode)."""
    def where(flag: str) -> str | None:
        if flag not in arguments or arguments.index(flag) + 1 >= len(arguments):
            return None
        value = str(arguments[arguments.index(flag) + 1])
        if value.startswith("s3://"):
            return value
        for local, uri in outputs:
            local = local.rstrip("/")
            if local and value.startswith(local + "/"):
                return aws.join_s3(uri, value[len(local) + 1:])
        return None

    return JobReportLocation(where(contract.REPORT_FLAG), where(contract.RESULT_JSON_FLAG))


def report_location_from_description(desc: dict[str, Any]) -> JobReportLocation:
    """Where a described (possibly older) job put its own report: read from the job, not recomputed."""
    outputs = [(out["S3Output"].get("LocalPath", ""), out["S3Output"].get("S3Uri", ""))
               for out in desc.get("ProcessingOutputConfig", {}).get("Outputs", []) if "S3Output" in out]
    return job_report_location(list(desc.get("AppSpecification", {}).get("ContainerArguments", [])), outputs)


#: The most of a job's report.md or result.json read back (the repack's report is a few kB: 50 members at most).
MAX_JOB_REPORT_BYTES = 1 << 20


def fetch_job_report(s3: Any, location: JobReportLocation, job: JobSummary) -> None:
    """Read the job's own report and result into ``job`` (``repack_report``, ``repack_result``), or say in
    ``job.repack_note`` why there is none. Never fails the launch: the model is what counts; a missing or
    unreadable report is logged and noted."""
    if not location.report_uri and not location.result_uri:
        job.repack_note = ("the job writes no report of its own (it was created by a launcher older than this one), "
                           "so its repack's decision is only in its log")
        return
    job.repack_report_uri = location.report_uri or location.result_uri or ""
    missing: list[str] = []
    try:
        text = _read_object(s3, location.report_uri, missing) if location.report_uri else None
        raw = _read_object(s3, location.result_uri, missing) if location.result_uri else None
    except DummyTrainingError as exc:
        log.warning("cannot read the job's own report: %s", exc)
        job.repack_note = f"the job's own report could not be read: {exc}"
        return
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            job.repack_result = parsed
        else:
            log.warning("the job's result %s is not a JSON object: ignored", location.result_uri)
    if text is not None:
        job.repack_report = text.decode("utf-8", errors="replace")
        log.info("the job's own report: %s", location.report_uri)
    elif missing:
        why = ("an image older than the launcher?" if job.status == STATUS_COMPLETED
               else "the repack writes it only when it succeeds")
        job.repack_note = f"the job's own report was not found at {missing[0]} ({why})"
        log.info("%s", job.repack_note)


def _read_object(s3: Any, uri: str, missing: list[str]) -> bytes | None:
    """The first ``MAX_JOB_REPORT_BYTES`` of object ``uri``; None (and ``uri`` noted in ``missing``) when it does
    not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = aws.parse_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return body.read(MAX_JOB_REPORT_BYTES)
        finally:
            body.close()
    except ClientError as exc:
        if aws.error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            missing.append(uri)
            return None
        raise aws.translate_error(exc, f"read {uri}") from exc
    except BotoCoreError as exc:
        raise aws.translate_error(exc, f"read {uri}") from exc


def output_model_uri_from_description(desc: dict[str, Any]) -> str:
    """Where a described (possibly older) job put its model: read from the job itself, not recomputed."""
    for out in desc.get("ProcessingOutputConfig", {}).get("Outputs", []):
        if out.get("OutputName") == contract.PROCESSING_OUTPUT_MODEL and "S3Output" in out:
            return _model_key_uri(out["S3Output"]["S3Uri"])
    args = desc.get("AppSpecification", {}).get("ContainerArguments", [])
    flag = contract.OUTPUT_URI.flag
    if flag in args and args.index(flag) + 1 < len(args):
        return _model_key_uri(args[args.index(flag) + 1])
    raise RuntimeIOError(f"job {desc.get('ProcessingJobName')} has no model output in its request")


def _model_key_uri(base: str) -> str:
    if base.endswith(contract.MODEL_FILENAME):
        return base
    return base.rstrip("/") + "/" + contract.MODEL_FILENAME


# --------------------------------------------------------------------------------------------- describe
def describe(sm: Any, name: str) -> dict[str, Any] | None:
    """DescribeProcessingJob, or None when no job has that name."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return sm.describe_processing_job(ProcessingJobName=name)
    except ClientError as exc:
        code = aws.error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if code in ("ResourceNotFound", "ResourceNotFoundException") or (
                code == "ValidationException" and ("Could not find" in message or "does not exist" in message)):
            return None
        raise aws.translate_error(exc, f"describe processing job {name}") from exc
    except BotoCoreError as exc:  # credentials, region, endpoint
        raise aws.translate_error(exc, f"describe processing job {name}") from exc


@dataclass
class _Resolution:
    name: str
    existing: dict[str, Any] | None  # a job to reuse or wait on; None -> create ``name``


def base_job_name(config: LaunchConfig) -> str:
    """The job's name before any attempt suffix: the explicit name, derived from the parts, or a fresh one."""
    if config.job_name:
        return processing_job.validate_job_name(config.job_name)
    return default_job_name(*config.job_name_parts) if config.job_name_parts else unique_job_name()


def _same_request(name: str, desc: dict[str, Any], request_for: Callable[[str], dict[str, Any]] | None) -> None:
    """Raise (exit 2) when the existing job ``name`` is not the job this launch would create."""
    if request_for is None:
        return
    diff = processing_job.request_difference(request_for(name), desc)
    if diff:
        raise InvalidInputError(
            f"processing job {name} already exists with another request ({diff}): not re-attaching to it; "
            "pass a new job_name (or leave it empty to derive one)")


def resolve_job(sm: Any, config: LaunchConfig, request_for: Callable[[str], dict[str, Any]] | None = None,
                base: str | None = None) -> _Resolution:
    """Decide which job this launch is: an existing one to reuse / wait on, or a new name to create.

    ``request_for(name)`` is the CreateProcessingJob request this launch would send as ``name``: an existing
    job is re-attached to only when its description is that request (``processing_job.request_difference``);
    another request under the name is refused (``InvalidInputError``, exit 2), so a reused name never returns
    another run's model. ``base``: the name from ``base_job_name`` (computed when not given)."""
    if config.job_name:
        name = processing_job.validate_job_name(config.job_name)
        desc = describe(sm, name)
        if desc is None:
            return _Resolution(name, None)
        _same_request(name, desc, request_for)
        status = desc["ProcessingJobStatus"]
        if status in (STATUS_FAILED, STATUS_STOPPED):
            reason = desc.get("FailureReason") or desc.get("ExitMessage") or ""
            raise JobFailedError(
                f"processing job {name} already exists and ended {status}"
                + (f" ({reason})" if reason else "")
                + "; SageMaker job names are unique: pass a new job_name (or leave it empty to derive one)"
            )
        return _Resolution(name, desc)
    base = base or base_job_name(config)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = base if attempt == 1 else f"{base}-a{attempt}"
        desc = describe(sm, name)
        if desc is None:
            return _Resolution(name, None)
        status = desc["ProcessingJobStatus"]
        if status in (STATUS_FAILED, STATUS_STOPPED):
            log.info("processing job %s exists and ended %s: trying the next attempt name", name, status)
            continue
        _same_request(name, desc, request_for)
        return _Resolution(name, desc)
    raise JobFailedError(f"processing jobs {base} .. {base}-a{MAX_ATTEMPTS} all ended Failed or Stopped; "
                         "pass a new job_name to run again")


# -------------------------------------------------------------------------------------------------- logs
class LogStreamer:
    """Copies the job's CloudWatch log streams into our log, remembering the forward token of each stream."""

    def __init__(self, logs_client: Any, job_name: str, emit: Callable[[str], None] | None = None) -> None:
        self.logs = logs_client
        self.job_name = job_name
        self.tokens: dict[str, str | None] = {}
        self.enabled = logs_client is not None
        self.emit = emit or (lambda line: remote_log.info("%s", line))

    def poll(self) -> int:
        """Emit every event not emitted yet; return how many. Never raises for missing logs or permissions."""
        if not self.enabled:
            return 0
        from botocore.exceptions import BotoCoreError, ClientError

        count = 0
        try:
            for stream in self._streams():
                count += self._drain(stream)
        except ClientError as exc:
            code = aws.error_code(exc)
            if code in ("ResourceNotFoundException", "ResourceNotFound"):
                return count  # the log group or stream does not exist yet
            if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
                log.warning("cannot read CloudWatch logs (%s): the job runs on, its logs are in CloudWatch", code)
                self.enabled = False
                return count
            log.warning("reading CloudWatch logs failed (%s); will retry", code)
        except BotoCoreError as exc:
            log.warning("reading CloudWatch logs failed (%s); will retry", exc)
        return count

    def _streams(self) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": contract.PROCESSING_JOB_LOG_GROUP,
                                  "logStreamNamePrefix": self.job_name + "/"}
        while True:
            page = self.logs.describe_log_streams(**kwargs)
            names += [s["logStreamName"] for s in page.get("logStreams", [])]
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return sorted(names)
            kwargs["nextToken"] = token

    def _drain(self, stream: str) -> int:
        count = 0
        short = stream[len(self.job_name) + 1:]
        while True:
            kwargs: dict[str, Any] = {"logGroupName": contract.PROCESSING_JOB_LOG_GROUP, "logStreamName": stream,
                                      "startFromHead": True}
            token = self.tokens.get(stream)
            if token:
                kwargs["nextToken"] = token
            page = self.logs.get_log_events(**kwargs)
            for event in page.get("events", []):
                self.emit(f"[{short}] {event.get('message', '').rstrip()}")
                count += 1
            next_token = page.get("nextForwardToken")
            self.tokens[stream] = next_token or token
            if not next_token or next_token == token:
                return count


# ------------------------------------------------------------------------------------------------- waiting
@dataclass
class Waiter:
    """Polls one job until it ends, with capped backoff, streaming its logs on every poll."""

    sm: Any
    job_name: str
    logs: LogStreamer | None
    poll_interval: float = 5.0
    max_poll_interval: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    last_status: str | None = None
    #: updated from every description (for the report)
    job: JobSummary | None = None

    def _describe(self) -> dict[str, Any]:
        desc = describe(self.sm, self.job_name)
        if desc is None:
            raise RuntimeIOError(f"processing job {self.job_name} disappeared")
        if self.job is not None:
            self.job.update_from_description(desc)
        status = desc["ProcessingJobStatus"]
        if status != self.last_status:
            log.info("processing job %s: %s", self.job_name, status)
            self.last_status = status
        return desc

    def _logs(self) -> None:
        if self.logs:
            self.logs.poll()

    def until(self, statuses: tuple[str, ...], deadline: float | None) -> dict[str, Any] | None:
        """Poll until the status is one of ``statuses`` (returns the description) or ``deadline`` (None)."""
        interval = self.poll_interval
        while True:
            desc = self._describe()
            self._logs()
            if desc["ProcessingJobStatus"] in statuses:
                return desc
            now = self.clock()
            if deadline is not None and now >= deadline:
                return None
            wait = interval if deadline is None else max(0.0, min(interval, deadline - now))
            self.sleep(wait)
            interval = min(interval * 1.5, self.max_poll_interval)


def stop_job(sm: Any, name: str) -> None:
    """StopProcessingJob; a job that already ended (ValidationException) is not an error."""
    from botocore.exceptions import BotoCoreError, ClientError

    log.warning("stopping processing job %s", name)
    try:
        sm.stop_processing_job(ProcessingJobName=name)
    except ClientError as exc:
        if aws.error_code(exc) == "ValidationException":
            log.info("stop %s: %s", name, exc.response.get("Error", {}).get("Message", ""))
            return
        raise aws.translate_error(exc, f"stop processing job {name}") from exc
    except BotoCoreError as exc:
        raise aws.translate_error(exc, f"stop processing job {name}") from exc


def stop_and_wait(waiter: Waiter, stop_wait_seconds: float) -> str | None:
    """Stop the job and wait (bounded) until it is Stopping or has ended; return the status seen."""
    stop_job(waiter.sm, waiter.job_name)
    desc = waiter.until((STATUS_STOPPING, *TERMINAL), waiter.clock() + stop_wait_seconds)
    status = desc["ProcessingJobStatus"] if desc else waiter.last_status
    log.warning("processing job %s is %s", waiter.job_name, status)
    return status


def _final(desc: dict[str, Any]) -> None:
    name = desc["ProcessingJobName"]
    status = desc["ProcessingJobStatus"]
    if status == STATUS_FAILED:
        reason = desc.get("FailureReason") or "no FailureReason given"
        raise JobFailedError(f"processing job {name} failed: {reason}")
    if status == STATUS_STOPPED:
        raise JobStoppedError(f"processing job {name} was stopped"
                              + (f": {desc['ExitMessage']}" if desc.get("ExitMessage") else ""))


# -------------------------------------------------------------------------------------------------- launch
@contextlib.contextmanager
def _stop_on_interrupt(waiter_factory: Callable[[], Waiter | None], stop_wait_seconds: float) -> Iterator[None]:
    try:
        yield
    except Interrupted:
        waiter = waiter_factory()
        if waiter is not None:
            try:
                stop_and_wait(waiter, stop_wait_seconds)
            except Interrupted:
                log.warning("interrupted again while stopping %s: not waiting any longer", waiter.job_name)
            except DummyTrainingError as exc:
                log.error("could not stop processing job %s: %s", waiter.job_name, exc)
        raise


def launch(config: LaunchConfig, *, clients: Clients | None = None, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic, job: JobSummary | None = None) -> LaunchResult:
    """Run (or re-attach to) the processing job for ``config`` and deliver its output; see the module doc.

    ``job`` is filled with what is learnt about the job as it goes (also when this raises): the report's data;
    the result carries it as ``result.job``."""
    job = job if job is not None else JobSummary(backend=BACKEND)
    started = clock()
    try:
        return _launch(config, clients, sleep, clock, job)
    finally:
        job.wait_seconds = clock() - started


#: ``JobSummary.backend`` of this launcher.
BACKEND = "SageMaker"


def plan_launch(config: LaunchConfig, base: str) -> staging.InputPlan:
    """Validate ``config`` and plan its inputs (no AWS call): where each will be staged, under the
    attempt-independent ``<staging prefix>/<base>/`` so a retry finds what the first attempt uploaded. A local
    model is judged first by the engine (``judge_local_model``): a hostile one fails here (exit 2), one given no
    hyperparameters without a root hyperparameters.json too (exit 1), before anything is staged or created."""
    if not config.model:
        raise InvalidInputError(f"{contract.MODEL.flag} is required")
    config.staging_base()  # an S3 prefix is given and valid
    build_spec(config, "validation-only").validate()  # role ARN, sizes, VPC, s3_direct vs isolation: fail early
    plan = staging.plan_inputs(model=config.model, hyperparameters=config.hyperparameters,
                               hyperparameters_json=config.hyperparameters_json,
                               staging_prefix=aws.join_s3(config.staging_base(), base), s3_direct=config.s3_direct)
    judge_local_model(plan)
    return plan


def judge_local_model(plan: staging.InputPlan) -> None:
    """A local model is judged by the engine (``step.judge``) before anything is staged or created: a hostile or
    broken archive exits 2 with the repack's own line, one with no root hyperparameters.json given none exits 1.
    Nothing to judge for a model already in S3 (the job judges it)."""
    local_model = plan.local_model_path()
    if local_model is None:
        return
    from dummy_training.step.judge import judge_local_model as judge

    judge(local_model, hyperparameters_given=plan.hyperparameters is not None,
          no_job="nothing was staged and no job was created")


def request_for(config: LaunchConfig, plan: staging.InputPlan) -> Callable[[str], dict[str, Any]]:
    """``name`` -> the CreateProcessingJob request this launch sends as job ``name``."""
    return lambda name: processing_job.build_create_processing_job_request(build_spec(config, name, plan.staged()))


def dry_run(config: LaunchConfig) -> dict[str, Any]:
    """The CreateProcessingJob request a launch of ``config`` would send, with no AWS call: local inputs at the
    S3 URIs they would be staged to, the job named as its first attempt (a launch may find that name used by a
    failed attempt and take ``-a2`` ...)."""
    base = base_job_name(config)
    plan = plan_launch(config, base)
    for planned in (plan.model, plan.hyperparameters):
        if planned is not None and planned.uri != planned.source:
            log.info("would stage %s (%s) %s -> %s", planned.what, planned.kind, planned.source, planned.uri)
    return request_for(config, plan)(base)


def _launch(config: LaunchConfig, clients: Clients | None, sleep: Callable[[float], None],
            clock: Callable[[], float], job: JobSummary) -> LaunchResult:
    base = base_job_name(config)
    plan = plan_launch(config, base)
    requests = request_for(config, plan)
    if clients is None:
        clients = make_clients(config)
    sm = clients.sagemaker
    state: dict[str, Waiter] = {}

    def waiter_for(name: str) -> Waiter:
        streamer = LogStreamer(clients.logs, name) if config.stream_logs else None
        state["waiter"] = Waiter(sm, name, streamer, config.poll_interval, config.max_poll_interval, sleep, clock,
                                 job=job)
        return state["waiter"]

    with _stop_on_interrupt(lambda: state.get("waiter"), config.stop_wait_seconds):
        resolution = resolve_job(sm, config, requests, base)
        name, desc = resolution.name, resolution.existing
        job.job_name, job.region = name, clients.region
        job.instance_type, job.instance_count = config.instance_type, config.instance_count
        if desc is not None:
            job.update_from_description(desc)
        if desc is None:
            _create(clients, config, name, plan, requests(name), waiter_for)
        _log_links(clients.region, name)  # the job exists now
        if desc is not None and desc["ProcessingJobStatus"] == STATUS_COMPLETED:
            log.info("processing job %s already Completed with the same request: reusing it (no new job)", name)
            return _deliver(clients, config, desc, reused=True, job=job)
        if desc is not None:
            log.info("processing job %s is %s with the same request: re-attaching", name,
                     desc["ProcessingJobStatus"])
        waiter = state.get("waiter") or waiter_for(name)
        timeout = config.timeout_seconds or (config.max_runtime_seconds + TIMEOUT_MARGIN)
        desc = waiter.until(TERMINAL, clock() + timeout)
        if desc is None:
            log.error("processing job %s did not finish within %.0f s: stopping it", name, timeout)
            status = stop_and_wait(waiter, config.stop_wait_seconds)
            if status == STATUS_COMPLETED:  # it finished while we were stopping it
                return _deliver(clients, config, waiter._describe(), reused=False, job=job)
            raise JobStoppedError(f"processing job {name} did not finish within {timeout:.0f} s and was stopped "
                                  f"(status {status}); raise the timeout or max_runtime_seconds")
        if waiter.logs:
            waiter.logs.poll()  # events written between the last poll and the end
        if desc["ProcessingJobStatus"] == STATUS_FAILED:  # its report, if the repack got that far
            fetch_job_report(clients.s3, report_location_from_description(desc), job)
        _final(desc)
        return _deliver(clients, config, desc, reused=False, job=job)


def _log_links(region: str, name: str) -> None:
    log.info("processing job %s: %s", name, console_url(region, name))
    log.info("logs: %s", logs_console_url(region, name))


def _create(clients: Clients, config: LaunchConfig, name: str, plan: staging.InputPlan, request: dict[str, Any],
            waiter_for: Callable[[str], Waiter]) -> None:
    """Stage the inputs and create job ``name`` (ResourceInUse: someone created it first; we wait on theirs)."""
    from botocore.exceptions import BotoCoreError, ClientError

    staging.stage_inputs(clients.s3, model=config.model, hyperparameters=config.hyperparameters,
                         hyperparameters_json=config.hyperparameters_json, staging_prefix="", plan=plan)
    log.info("creating processing job %s (%s x %s, image %s)", name, config.instance_count, config.instance_type,
             config.image_uri)
    waiter_for(name)  # from here on an interrupt stops this job
    try:
        clients.sagemaker.create_processing_job(**request)
    except ClientError as exc:
        if aws.error_code(exc) in ("ResourceInUse", "ResourceInUseException"):
            existing = describe(clients.sagemaker, name)
            if existing is not None:
                _same_request(name, existing, lambda _n: request)
            log.info("processing job %s already exists (created concurrently, with the same request): "
                     "re-attaching", name)
            return
        if aws.error_code(exc) == "ValidationException" and "role" in str(exc).lower():
            raise InvalidInputError(f"create processing job {name}: the role {config.role_arn} was rejected: "
                                    f"{exc.response.get('Error', {}).get('Message', '')}") from exc
        raise aws.translate_error(exc, f"create processing job {name}") from exc
    except BotoCoreError as exc:
        raise aws.translate_error(exc, f"create processing job {name}") from exc


def _deliver(clients: Clients, config: LaunchConfig, desc: dict[str, Any], *, reused: bool,
             job: JobSummary) -> LaunchResult:
    result = LaunchResult(
        job_name=desc["ProcessingJobName"],
        job_arn=desc.get("ProcessingJobArn", ""),
        model_s3_uri=output_model_uri_from_description(desc),
        status=desc["ProcessingJobStatus"],
        reused=reused,
        job=job,
    )
    job.update_from_description(desc)
    job.reused, job.model_s3_uri = reused, result.model_s3_uri
    log.info("processing job %s Completed; model at %s", result.job_name, result.model_s3_uri)
    fetch_job_report(clients.s3, report_location_from_description(desc), job)
    if config.model_output_dir:
        result.local_model_path = download_model(clients.s3, result.model_s3_uri, config.model_output_dir)
        job.local_model_path = result.local_model_path
    return result


def download_model(s3: Any, uri: str, directory: str) -> str:
    """Download ``uri`` to ``<directory>/model.tar.gz`` (temp name, then rename); return the path."""
    from boto3.s3.transfer import TransferConfig

    bucket, key = aws.parse_s3_uri(uri)
    target_dir = Path(directory)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeIOError(f"cannot create {target_dir}: {exc.strerror}") from None
    target = target_dir / contract.MODEL_FILENAME
    tmp = target_dir / f".{contract.MODEL_FILENAME}.part"
    log.info("downloading %s -> %s", uri, target)
    try:  # the one partial file is ours (download_file would add its own temp name): removed on any failure
        with aws.translating(f"download {uri}"), open(tmp, "wb") as fh:
            s3.download_fileobj(bucket, key, fh, Config=TransferConfig(max_concurrency=8))
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeIOError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(target)
