"""The ACK backend: the same processing job as a ``sagemaker.services.k8s.aws/v1alpha1`` ``ProcessingJob``.

The manifest comes from ``dummy_training.ack.manifest`` (the SageMaker backend's very request in ACK's casing).
The runner creates the custom resource through the Kubernetes API (in-cluster config,
else a kubeconfig), re-attaches to a resource of the same name instead of duplicating it, and waits on its
status as the ACK SageMaker controller writes it:

- success: ``status.processingJobStatus`` is ``Completed`` and the ``ACK.ResourceSynced`` condition is True;
- failure: ``Failed`` (``status.failureReason`` is reported), ``Stopped``, the ``ACK.Terminal`` condition
  True (the controller's terminal codes: ResourceInUse, ResourceNotFound, InvalidParameter*, MissingParameter),
  or ``ACK.Recoverable`` True with a ``ValidationException`` before the job exists (SageMaker rejected the
  request: the controller would retry it for ever); the condition's message is reported;
- ``ACK.Recoverable`` True (a transient AWS error the controller retries) is logged and waited through.

On ``errors.Interrupted`` (SIGTERM/SIGINT) and on the overall timeout the resource is deleted: the controller's
finalizer then calls StopProcessingJob. The kubernetes client is imported lazily (the ``[ack]`` extra).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dummy_training import aws, contract
from dummy_training.ack.manifest import build_manifest, resource_name
from dummy_training.errors import (
    DummyTrainingError,
    Interrupted,
    InvalidInputError,
    JobFailedError,
    JobStoppedError,
    RuntimeIOError,
)
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker import staging
from dummy_training.sagemaker.launcher import LaunchConfig, LaunchResult
from dummy_training.sagemaker.processing_job import first_difference, validate_job_name
from dummy_training.sagemaker.report import JobSummary, region_of_arn

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ status reading
class State(enum.Enum):
    PENDING = "pending"  # not created on SageMaker yet, InProgress, Stopping, or Completed but not yet synced
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    REJECTED = "rejected"  # ACK.Terminal: SageMaker (or the controller) refused the resource


COND_SYNCED = "ACK.ResourceSynced"
COND_TERMINAL = "ACK.Terminal"
COND_RECOVERABLE = "ACK.Recoverable"
#: In an ACK.Recoverable message before the job exists: SageMaker refused the CreateProcessingJob request (the
#: controller formats AWS errors as smithy does, ``api error <Code>: <message>``).
REJECTED_CREATE = "api error ValidationException"


@dataclass(frozen=True)
class Observation:
    state: State
    job_status: str | None
    message: str
    arn: str | None


def _condition(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def _is_true(cond: Mapping[str, Any] | None) -> bool:
    return cond is not None and str(cond.get("status")) == "True"


def observe(obj: Mapping[str, Any]) -> Observation:
    """What the controller says about the job in ``obj`` (a ProcessingJob resource as the API returns it)."""
    status = obj.get("status") or {}
    job_status = status.get("processingJobStatus")
    arn = (status.get("ackResourceMetadata") or {}).get("arn")
    terminal = _condition(obj, COND_TERMINAL)
    if _is_true(terminal):
        msg = str(terminal.get("message") or terminal.get("reason") or "no message").replace("\n\t", " ").strip()
        return Observation(State.REJECTED, job_status, msg, arn)
    if job_status == "Failed":  # FailureReason may span lines (a job's stderr tail): the error is one line
        reason = " ".join(str(status.get("failureReason") or "").split())
        return Observation(State.FAILED, job_status, reason or "no failure reason given", arn)
    if job_status == "Stopped":
        return Observation(State.STOPPED, job_status, "the processing job was stopped", arn)
    synced = _condition(obj, COND_SYNCED)
    if job_status == "Completed" and _is_true(synced):
        return Observation(State.COMPLETED, job_status, "completed", arn)
    recoverable = _condition(obj, COND_RECOVERABLE)
    if _is_true(recoverable):
        msg = str(recoverable.get("message") or "").replace("\n\t", " ").strip()
        if not arn and not job_status and REJECTED_CREATE in msg:
            # The controller counts only a few error codes as terminal; SageMaker's own ValidationException on
            # CreateProcessingJob is "recoverable" and retried for ever, though only a spec change can fix it.
            return Observation(State.REJECTED, job_status, msg, arn)
        return Observation(State.PENDING, job_status, f"controller is retrying: {msg}", arn)
    if job_status:
        return Observation(State.PENDING, job_status, job_status, arn)
    return Observation(State.PENDING, None, "waiting for the controller to create the job", arn)


#: ``JobSummary.backend`` of this launcher.
BACKEND = "ACK"


def update_from_resource(job: JobSummary, obj: Mapping[str, Any]) -> None:
    """Take what a ProcessingJob resource says into the report's ``job`` (the ACK status has no processing
    times, so no billable seconds: the report links to the console for those)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = status.get("ackResourceMetadata") or {}
    job.job_name = spec.get("processingJobName") or job.job_name
    job.job_arn = meta.get("arn") or job.job_arn
    job.region = meta.get("region") or region_of_arn(job.job_arn) or job.region
    job.status = status.get("processingJobStatus") or job.status
    job.failure_reason = status.get("failureReason") or job.failure_reason
    cluster = (spec.get("processingResources") or {}).get("clusterConfig") or {}
    job.instance_type = cluster.get("instanceType") or job.instance_type
    job.instance_count = int(cluster.get("instanceCount") or job.instance_count)
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if isinstance(created, str) and created:
        from datetime import datetime

        with contextlib.suppress(ValueError):
            job.created = datetime.fromisoformat(created.replace("Z", "+00:00"))
    job.conditions = [(str(c.get("type", "")), str(c.get("status", "")),
                       str(c.get("message") or c.get("reason") or "").replace("\n\t", " ").strip())
                      for c in status.get("conditions") or []]


# --------------------------------------------------------------------------------- Kubernetes API access
def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A kubernetes ``ApiClient``: in-cluster config when running in a pod (and no kubeconfig was given),
    else the kubeconfig (``kubeconfig`` path, ``$KUBECONFIG`` or ``~/.kube/config``) and ``context``."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if not kubeconfig and not context:
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            log.info("using the in-cluster Kubernetes configuration")
            return client.ApiClient(configuration)
        except ConfigException:
            pass
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError, TypeError) as exc:
        raise RuntimeIOError(f"no Kubernetes configuration: not in a pod and no usable kubeconfig "
                             f"({exc}); pass --kubeconfig/--context or set KUBECONFIG") from None


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The pod's namespace in a cluster, else the kubeconfig context's namespace, else ``default``."""
    if not kubeconfig and not context and SERVICE_ACCOUNT_NAMESPACE.is_file():
        ns = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if ns:
            return ns
    try:
        from kubernetes import config

        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
        ns = ((chosen or {}).get("context") or {}).get("namespace")
        if ns:
            return str(ns)
    except Exception:  # noqa: BLE001 - no kubeconfig: fall back to the default namespace
        pass
    return "default"


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    try:
        return str(json.loads(body).get("message") or body)
    except (TypeError, ValueError, AttributeError):
        return str(body or getattr(exc, "reason", "") or exc)


def translate_api_error(exc: BaseException, action: str) -> DummyTrainingError:
    """A Kubernetes API error as one clear line (RBAC, missing CRD, schema rejection, connectivity)."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return RuntimeIOError(
            f"{action}: Kubernetes API denied access ({status}): {_api_message(exc)}; the service account needs "
            f"create/get/list/watch/delete on {contract.ACK_PLURAL}.{contract.ACK_GROUP} "
            "(see components/ack_dummy_training/rbac.yaml)")
    if status == 404:
        return RuntimeIOError(
            f"{action}: {contract.ACK_PLURAL}.{contract.ACK_GROUP} not found ({_api_message(exc)}): is the ACK "
            "SageMaker controller (and its CRDs) installed in this cluster?")
    if status in (400, 422):
        return InvalidInputError(f"{action}: the Kubernetes API rejected the manifest: {_api_message(exc)}")
    if status:
        return RuntimeIOError(f"{action}: Kubernetes API error {status}: {_api_message(exc)}")
    return RuntimeIOError(f"{action}: cannot reach the Kubernetes API: {exc}")


def _is_transient(exc: BaseException) -> bool:
    status = getattr(exc, "status", None)
    if status is None:
        return True  # connection refused/reset, timeouts (urllib3 errors)
    return status == 429 or status >= 500


class ProcessingJobResource:
    """One ProcessingJob custom resource, by namespace and name, through ``CustomObjectsApi``."""

    def __init__(self, api: Any, namespace: str, name: str, *, request_timeout: float = 30.0) -> None:
        self.api = api  # kubernetes.client.CustomObjectsApi (or anything with its method signatures)
        self.namespace = namespace
        self.name = name
        self.request_timeout = request_timeout

    @classmethod
    def connect(cls, namespace: str, name: str, *, kubeconfig: str | None = None,
                context: str | None = None) -> ProcessingJobResource:
        from kubernetes import client

        return cls(client.CustomObjectsApi(load_api_client(kubeconfig, context)), namespace, name)

    def _args(self) -> tuple[str, str, str, str]:
        return contract.ACK_GROUP, contract.ACK_VERSION, self.namespace, contract.ACK_PLURAL

    def describe(self) -> str:
        return f"{contract.ACK_PLURAL}.{contract.ACK_GROUP}/{self.name} in namespace {self.namespace}"

    def get(self) -> dict[str, Any] | None:
        """The resource, or None when it does not exist."""
        try:
            return self.api.get_namespaced_custom_object(*self._args(), self.name,
                                                         _request_timeout=self.request_timeout)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create with strict field validation: a field the installed CRD does not know is a 400 naming it
        (the server's default, Warn, would prune it silently and the controller would run another job)."""
        return self.api.create_namespaced_custom_object(*self._args(), dict(manifest), field_validation="Strict",
                                                        _request_timeout=self.request_timeout)

    def delete(self) -> bool:
        """Delete the resource (the controller stops the job); False when it was already gone."""
        try:
            self.api.delete_namespaced_custom_object(*self._args(), self.name,
                                                     _request_timeout=self.request_timeout)
            return True
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise


# ------------------------------------------------------------------------------------------------- runner
@dataclass(frozen=True)
class WaitPolicy:
    """Polling schedule: ``interval`` growing by ``backoff`` up to ``max_interval``; ``timeout`` overall (None:
    no limit); ``max_transient_errors`` consecutive API errors tolerated while polling; ``delete_wait`` seconds
    to wait for a deleted resource to disappear (the controller stops the job, then drops its finalizer)."""

    interval: float = 5.0
    max_interval: float = 30.0
    backoff: float = 1.5
    timeout: float | None = None
    max_transient_errors: int = 10
    delete_wait: float = 300.0


class _Timeout(Exception):
    pass


def wait(resource: ProcessingJobResource, policy: WaitPolicy = WaitPolicy(), *,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
         job: JobSummary | None = None) -> tuple[Observation, dict[str, Any]]:
    """Poll until the job is COMPLETED (returned with the resource) or ends otherwise (a DummyTrainingError);
    ``job`` (the report's data) is updated from every resource read."""
    deadline = None if policy.timeout is None else clock() + policy.timeout
    interval = policy.interval
    errors = 0
    last: tuple[State, str | None, str] | None = None
    while True:
        try:
            obj = resource.get()
            errors = 0
        except DummyTrainingError:  # our own errors are not API errors (Interrupted is a BaseException)
            raise
        except Exception as exc:
            if not _is_transient(exc) or errors >= policy.max_transient_errors:
                raise translate_api_error(exc, f"read {resource.describe()}") from exc
            errors += 1
            log.warning("reading %s failed (%s); retrying", resource.describe(), exc)
            obj = {}
        if obj is None:
            raise JobStoppedError(f"{resource.describe()} was deleted while waiting (someone deleted it; the "
                                  "controller stops its SageMaker job)")
        if obj:
            if job is not None:
                update_from_resource(job, obj)
            seen = observe(obj)
            key = (seen.state, seen.job_status, seen.message)
            if key != last:
                log.info("%s: %s", resource.name, seen.message if seen.job_status != seen.message
                         else f"processingJobStatus={seen.job_status}")
                last = key
            if seen.state is State.COMPLETED:
                return seen, obj
            if seen.state is State.FAILED:
                raise JobFailedError(f"processing job {resource.name} failed: {seen.message}")
            if seen.state is State.REJECTED:
                why = (COND_TERMINAL if _is_true(_condition(obj, COND_TERMINAL))
                       else f"{COND_RECOVERABLE}, which the controller retries without end")
                raise JobFailedError(f"processing job {resource.name} was rejected ({why}): {seen.message}")
            if seen.state is State.STOPPED:
                raise JobStoppedError(f"processing job {resource.name} was stopped")
        if deadline is not None and clock() >= deadline:
            raise _Timeout
        step = interval if deadline is None else max(0.0, min(interval, deadline - clock()))
        sleep(step)
        interval = min(policy.max_interval, interval * policy.backoff)


def delete_and_wait(resource: ProcessingJobResource, policy: WaitPolicy, *,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> None:
    """Delete the resource and give the controller ``policy.delete_wait`` seconds to stop the job and drop its
    finalizer. Never raises: this runs during cleanup, the original error is what the user must see."""
    try:
        if not resource.delete():
            return
        log.warning("deleted %s: the ACK controller stops the SageMaker job", resource.describe())
        deadline = clock() + policy.delete_wait
        while clock() < deadline:
            if resource.get() is None:
                log.info("%s is gone", resource.describe())
                return
            sleep(min(2.0, policy.interval))
        log.warning("%s still exists (the controller's finalizer has not finished); not waiting longer",
                    resource.describe())
    except Interrupted:
        log.warning("interrupted again while deleting %s: not waiting any longer", resource.describe())
    except Exception as exc:  # noqa: BLE001 - cleanup must not mask the reason we are cleaning up
        log.error("could not delete %s: %s; delete it by hand: kubectl delete %s %s -n %s",
                  resource.describe(), exc, contract.ACK_PLURAL, resource.name, resource.namespace)


def output_model_uri_from_resource(obj: Mapping[str, Any]) -> str:
    """Where a ProcessingJob resource (possibly created by an earlier attempt) puts the model: read from it."""
    spec = obj.get("spec") or {}
    for out in (spec.get("processingOutputConfig") or {}).get("outputs") or []:
        if out.get("outputName") == contract.PROCESSING_OUTPUT_MODEL and out.get("s3Output"):
            return _model_key_uri(out["s3Output"]["s3URI"])
    args = (spec.get("appSpecification") or {}).get("containerArguments") or []
    flag = contract.OUTPUT_URI.flag
    if flag in args and args.index(flag) + 1 < len(args):
        return _model_key_uri(args[args.index(flag) + 1])
    raise RuntimeIOError(f"ProcessingJob {(obj.get('metadata') or {}).get('name')} has no model output in its spec")


def report_location_from_resource(obj: Mapping[str, Any]) -> sagemaker_launcher.JobReportLocation:
    """Where a ProcessingJob resource (possibly created by an earlier attempt) has its job write its own report:
    read from the resource's spec (``sagemaker_launcher.job_report_location``)."""
    spec = obj.get("spec") or {}
    outputs = [((out.get("s3Output") or {}).get("localPath", ""), (out.get("s3Output") or {}).get("s3URI", ""))
               for out in (spec.get("processingOutputConfig") or {}).get("outputs") or [] if out.get("s3Output")]
    args = (spec.get("appSpecification") or {}).get("containerArguments") or []
    return sagemaker_launcher.job_report_location(list(args), outputs)


def _model_key_uri(base: str) -> str:
    if base.endswith(contract.MODEL_FILENAME):
        return base
    return base.rstrip("/") + "/" + contract.MODEL_FILENAME


@dataclass
class AckOptions:
    """Where and how the resource is created (the Kubernetes side of a launch)."""

    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class _Resolution:
    name: str  # the SageMaker job name
    resource: ProcessingJobResource
    existing: dict[str, Any] | None  # a resource to re-attach to; None -> create it


def resolve(api: Any, namespace: str, config: LaunchConfig,
            spec_for: Callable[[str], Mapping[str, Any]] | None = None, base: str | None = None) -> _Resolution:
    """Which resource this launch is, with the SageMaker launcher's rules (``sagemaker_launcher.resolve_job``):
    no resource -> create; Completed or still running with the spec this launch would create
    (``spec_for(name)``) -> re-attach; another spec -> refused (``InvalidInputError``, exit 2, naming the first
    field that differs); Failed / Stopped / rejected -> for a derived name try the next attempt name (``-a2``
    ...), for an explicit ``job_name`` stop and ask for a new name.

    A resource being deleted (``metadata.deletionTimestamp``) is never re-attached to: its controller is
    stopping its SageMaker job, and SageMaker job names are unique forever, so waiting for it to go and creating
    it again under the same name would only find that stopped job again. A derived name goes on to the next
    attempt name (a new job, as for a stopped one); an explicit ``job_name`` is refused with one line
    (``JobStoppedError``, exit 6: the job under that name was stopped)."""
    if config.job_name:
        names = [validate_job_name(config.job_name)]
    else:
        base = base or sagemaker_launcher.base_job_name(config)
        names = [base] + [f"{base}-a{n}" for n in range(2, sagemaker_launcher.MAX_ATTEMPTS + 1)]
    for name in names:
        resource = ProcessingJobResource(api, namespace, resource_name(name))
        try:
            obj = resource.get()
        except DummyTrainingError:
            raise
        except Exception as exc:
            raise translate_api_error(exc, f"read {resource.describe()}") from exc
        if obj is None:
            return _Resolution(name, resource, None)
        deleting = (obj.get("metadata") or {}).get("deletionTimestamp")
        if deleting:
            if config.job_name:
                raise JobStoppedError(f"{resource.describe()} is being deleted (since {deleting}; its SageMaker "
                                      "job is stopped and its name cannot be used again): not re-attaching; pass "
                                      "a new job_name (or leave it empty to derive one)")
            log.info("%s is being deleted (since %s): trying the next attempt name", resource.describe(), deleting)
            continue
        seen = observe(obj)
        if config.job_name or seen.state in (State.PENDING, State.COMPLETED):
            _same_spec(resource, obj, spec_for, name)
        if seen.state in (State.PENDING, State.COMPLETED):
            return _Resolution(name, resource, obj)
        ended = f"ended {seen.state.value} ({seen.message})"
        if config.job_name:
            raise JobFailedError(f"{resource.describe()} already exists and {ended}; SageMaker job names are "
                                 "unique: pass a new job_name (or leave it empty to derive one)")
        log.info("%s exists and %s: trying the next attempt name", resource.describe(), ended)
    raise JobFailedError(f"ProcessingJobs {names[0]} .. {names[-1]} all ended Failed, Stopped, rejected or are "
                         "being deleted; pass a new job_name to run again")


def _same_spec(resource: ProcessingJobResource, obj: Mapping[str, Any],
               spec_for: Callable[[str], Mapping[str, Any]] | None, name: str) -> None:
    """Raise (exit 2) when the existing resource's spec is not the spec this launch would create."""
    if spec_for is None:
        return
    diff = first_difference(dict(spec_for(name)), dict(obj.get("spec") or {}), "spec")
    if diff:
        raise InvalidInputError(f"{resource.describe()} already exists with another spec ({diff}): not "
                                "re-attaching to it; pass a new job_name (or leave it empty to derive one)")


def staging_prefix(config: LaunchConfig, name: str) -> str:
    """``<s3_prefix>/<job-name>/``, attempt-independent so a retry finds what the first attempt uploaded."""
    base = name if config.job_name or not config.job_name_parts else sagemaker_launcher.default_job_name(
        *config.job_name_parts)
    return aws.join_s3(config.staging_base(), base)


def manifest_for(config: LaunchConfig, name: str, plan: staging.InputPlan, options: AckOptions,
                 namespace: str | None) -> dict[str, Any]:
    """The manifest of job ``name`` with the inputs where ``plan`` puts them (nothing staged)."""
    spec = sagemaker_launcher.build_spec(config, name, plan.staged())
    return build_manifest(spec, namespace=namespace, labels=options.labels, annotations=options.annotations)


def make_manifest(config: LaunchConfig, name: str, s3: Any, options: AckOptions,
                  namespace: str | None) -> dict[str, Any]:
    """Stage the inputs (``staging.stage_inputs``) and build the manifest of job ``name``."""
    plan = staging.plan_inputs(model=config.model, hyperparameters=config.hyperparameters,
                               hyperparameters_json=config.hyperparameters_json,
                               staging_prefix=staging_prefix(config, name), s3_direct=config.s3_direct)
    sagemaker_launcher.judge_local_model(plan)  # before anything is staged
    staging.stage_inputs(s3, model=config.model, hyperparameters=config.hyperparameters,
                         hyperparameters_json=config.hyperparameters_json, staging_prefix="", plan=plan)
    return manifest_for(config, name, plan, options, namespace)


def launch(config: LaunchConfig, options: AckOptions | None = None, *, api: Any = None, s3: Any = None,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
           job: JobSummary | None = None) -> LaunchResult:
    """Run (or re-attach to) the ProcessingJob for ``config`` (a ``sagemaker_launcher.LaunchConfig``: the same
    inputs as the SageMaker backend) and deliver its output as a ``sagemaker_launcher.LaunchResult``.

    ``api`` is a ``CustomObjectsApi`` (default: from in-cluster config or the kubeconfig), ``s3`` a boto3 S3
    client (default: from the config's region/endpoint/assume-role). ``job`` is filled with what is learnt
    about the job (also when this raises): the report's data, returned as ``result.job``."""
    job = job if job is not None else JobSummary(backend=BACKEND)
    started = clock()
    try:
        return _launch(config, options or AckOptions(), api, s3, sleep, clock, job)
    finally:
        job.wait_seconds = clock() - started


#: A rejection that means the SageMaker job name is taken: the controller found a job of that name that it did
#: not create (an earlier attempt's, stopped when its resource was deleted) and does not adopt it.
_NAME_TAKEN = re.compile(r"ResourceInUse|already exists", re.IGNORECASE)


def _name_taken(exc: JobFailedError) -> bool:
    return "was rejected" in str(exc) and bool(_NAME_TAKEN.search(str(exc)))


def _launch(config: LaunchConfig, options: AckOptions, api: Any, s3: Any, sleep: Callable[[float], None],
            clock: Callable[[], float], job: JobSummary) -> LaunchResult:
    base = sagemaker_launcher.base_job_name(config)
    # validate, plan the inputs, judge a local model: before any cluster or bucket
    plan = sagemaker_launcher.plan_launch(config, base)
    namespace = options.namespace or default_namespace(options.kubeconfig, options.context)
    if api is None:
        from kubernetes import client

        api = client.CustomObjectsApi(load_api_client(options.kubeconfig, options.context))
    if s3 is None:
        sess = aws.session(config.region, config.assume_role_arn)
        s3 = aws.client("s3", region=config.region, endpoint_url=config.endpoint_url, boto_session=sess)
    timeout = config.timeout_seconds or (config.max_runtime_seconds + sagemaker_launcher.TIMEOUT_MARGIN)
    policy = WaitPolicy(interval=config.poll_interval, max_interval=max(config.poll_interval,
                                                                        config.max_poll_interval),
                        timeout=timeout, delete_wait=config.stop_wait_seconds)
    owned: list[ProcessingJobResource] = []  # what an interrupt or the timeout deletes
    described: dict[str, Any] = {}  # the resource as created or found: where its job writes its own report
    try:
        while True:  # again after a derived name turns out to be taken (_name_taken)
            res = resolve(api, namespace, config, lambda n: manifest_for(config, n, plan, options, namespace)["spec"],
                          base)
            resource = res.resource
            job.job_name, job.resource = res.name, resource.describe()
            job.instance_type, job.instance_count = config.instance_type, config.instance_count
            job.region = config.region or ""
            if res.existing is not None:
                update_from_resource(job, res.existing)
            reused = res.existing is not None and observe(res.existing).state is State.COMPLETED
            if res.existing is None:
                staging.stage_inputs(s3, model=config.model, hyperparameters=config.hyperparameters,
                                     hyperparameters_json=config.hyperparameters_json, staging_prefix="", plan=plan)
                manifest = manifest_for(config, res.name, plan, options, namespace)
                described = manifest
                owned.append(resource)
                log.info("creating %s (SageMaker job %s, %s x %s)", resource.describe(), res.name,
                         config.instance_count, config.instance_type)
                try:
                    resource.create(manifest)
                except DummyTrainingError:
                    raise
                except Exception as exc:
                    if getattr(exc, "status", None) != 409:
                        raise translate_api_error(exc, f"create {resource.describe()}") from exc
                    twin = resource.get()
                    if twin is not None:
                        spec = manifest["spec"]
                        _same_spec(resource, twin, lambda _n, spec=spec: spec, res.name)
                    log.info("%s was created concurrently (with the same spec): re-attaching", resource.describe())
            else:
                described = res.existing
                owned.append(resource)
                log.info("re-attaching to existing %s (%s)", resource.describe(), observe(res.existing).message)
            log.info("watch it with: kubectl get %s %s -n %s -w", contract.ACK_PLURAL, resource.name, namespace)
            try:
                seen, obj = wait(resource, policy, sleep=sleep, clock=clock, job=job)
            except JobFailedError as exc:
                if job.status == "Failed":  # the job ran (not rejected): its report, if the repack got that far
                    sagemaker_launcher.fetch_job_report(s3, report_location_from_resource(described), job)
                if res.existing is None and not config.job_name and _name_taken(exc):
                    # an earlier attempt's job (stopped when its resource was deleted) holds the name for ever
                    log.warning("%s was refused: a SageMaker job named %s exists already (an earlier attempt's): "
                                "trying the next attempt name", resource.describe(), res.name)
                    owned.remove(resource)
                    continue
                raise
            break
    except Interrupted:
        for r in owned:
            log.warning("interrupted: deleting %s", r.describe())
            delete_and_wait(r, policy, sleep=sleep, clock=clock)
        raise
    except _Timeout:
        for r in owned:
            delete_and_wait(r, policy, sleep=sleep, clock=clock)
        raise JobStoppedError(f"processing job {res.name} did not finish within {timeout:.0f} s; deleted "
                              f"{resource.describe()} so the controller stops it; raise the timeout or "
                              "max_runtime_seconds") from None
    result = LaunchResult(
        job_name=(obj.get("spec") or {}).get("processingJobName") or res.name,
        job_arn=seen.arn or "",
        model_s3_uri=output_model_uri_from_resource(obj),
        status=seen.job_status or "Completed",
        reused=reused,
        job=job,
    )
    job.reused, job.model_s3_uri = reused, result.model_s3_uri
    log.info("processing job %s Completed; model at %s", result.job_name, result.model_s3_uri)
    sagemaker_launcher.fetch_job_report(s3, report_location_from_resource(obj), job)
    if config.model_output_dir:
        result.local_model_path = sagemaker_launcher.download_model(s3, result.model_s3_uri, config.model_output_dir)
        job.local_model_path = result.local_model_path
    return result
