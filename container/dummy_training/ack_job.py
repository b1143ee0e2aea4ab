"""The ACK backend: the same processing job as a ``sagemaker.services.k8s.aws/v1alpha1`` ``ProcessingJob``.

The manifest is ``processing_job.build_create_processing_job_request(spec)`` (the exact SageMaker request the
SageMaker backend sends) converted to ACK's field casing by ``to_ack``; the two backends therefore describe the
same job by construction. The runner creates the custom resource through the Kubernetes API (in-cluster config,
else a kubeconfig), re-attaches to a resource of the same name instead of duplicating it, and waits on its
status as the ACK SageMaker controller writes it:

- success: ``status.processingJobStatus`` is ``Completed`` and the ``ACK.ResourceSynced`` condition is True;
- failure: ``Failed`` (``status.failureReason`` is reported), ``Stopped``, or the ``ACK.Terminal`` condition is
  True (SageMaker rejected the request; the condition's message is reported);
- ``ACK.Recoverable`` True (a transient AWS error the controller retries) is logged and waited through.

On ``errors.Interrupted`` (SIGTERM/SIGINT) and on the overall timeout the resource is deleted: the controller's
finalizer then calls StopProcessingJob. The kubernetes client is imported lazily (the ``[ack]`` extra).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dummy_training import contract
from dummy_training.errors import (
    USER_ERRORS,
    DummyTrainingError,
    Interrupted,
    InvalidInputError,
    JobFailedError,
    JobStoppedError,
    RuntimeIOError,
)
from dummy_training.processing_job import ProcessingJobSpec, build_create_processing_job_request

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------- boto3 -> ACK casing
#: boto3 (SageMaker API) member names whose ACK name is not just the name with a lower-case first letter.
#: ACK's code generator upper-cases the initialisms URI, ARN, ID(s), KMS; every name here was checked against
#: the CRD (tests validate the converted manifests with unknown fields forbidden).
IRREGULAR_NAMES: dict[str, str] = {
    "ImageUri": "imageURI",
    "S3Uri": "s3URI",
    "RoleArn": "roleARN",
    "KmsKeyId": "kmsKeyID",
    "VolumeKmsKeyId": "volumeKMSKeyID",
    "SecurityGroupIds": "securityGroupIDs",
    "VolumeSizeInGB": "volumeSizeInGB",
    "VpcConfig": "vpcConfig",
    "ContainerEntrypoint": "containerEntrypoint",
    "ClusterId": "clusterID",
    "ClusterRoleArn": "clusterRoleARN",
    "OutputS3Uri": "outputS3URI",
}
#: Members whose value is a user map: its keys are data (environment variable names), never renamed.
MAP_MEMBERS = frozenset({"Environment"})


def ack_name(boto_name: str) -> str:
    """The ACK (CRD) field name of a SageMaker API member name."""
    if boto_name in IRREGULAR_NAMES:
        return IRREGULAR_NAMES[boto_name]
    return boto_name[:1].lower() + boto_name[1:]


def to_ack(value: Any) -> Any:
    """A boto3 request (or any part of one) in ACK's casing; lists and scalars keep their shape."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[ack_name(key)] = dict(item) if key in MAP_MEMBERS else to_ack(item)
        return out
    if isinstance(value, list | tuple):
        return [to_ack(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------- manifest
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DEFAULT_LABELS = {"app.kubernetes.io/name": contract.CONSOLE_SCRIPT}


def resource_name(job_name: str) -> str:
    """A DNS-1123 label for ``metadata.name`` derived from a SageMaker job name (deterministic).

    A valid job name is at most 63 letters, digits and hyphens starting and ending alphanumeric; lower-casing it
    gives a valid label. When lower-casing changes it, 8 hex digits of a hash of the original are appended
    (within 63 characters) so ``Job`` and ``job`` name distinct resources."""
    name = job_name.lower()
    if name != job_name:
        digest = hashlib.sha256(job_name.encode()).hexdigest()[:8]
        name = name[: 63 - 9].rstrip("-") + "-" + digest
    if not DNS1123_LABEL_RE.match(name) or len(name) > 63:
        raise InvalidInputError(f"cannot derive a Kubernetes resource name from job name {job_name!r}")
    return name


def build_manifest(spec: ProcessingJobSpec, *, namespace: str | None = None,
                   labels: Mapping[str, str] | None = None,
                   annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ProcessingJob custom resource for ``spec`` (``kubectl apply``-able)."""
    request = build_create_processing_job_request(spec)
    metadata: dict[str, Any] = {"name": resource_name(spec.job_name)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {**DEFAULT_LABELS, **(labels or {})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": contract.ACK_API_VERSION,
        "kind": contract.ACK_KIND,
        "metadata": metadata,
        "spec": to_ack(request),
    }


def manifest_yaml(manifest: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)


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
    if job_status == "Failed":
        return Observation(State.FAILED, job_status, status.get("failureReason") or "no failure reason given", arn)
    if job_status == "Stopped":
        return Observation(State.STOPPED, job_status, "the processing job was stopped", arn)
    synced = _condition(obj, COND_SYNCED)
    if job_status == "Completed" and _is_true(synced):
        return Observation(State.COMPLETED, job_status, "completed", arn)
    recoverable = _condition(obj, COND_RECOVERABLE)
    if _is_true(recoverable):
        msg = str(recoverable.get("message") or "").replace("\n\t", " ").strip()
        return Observation(State.PENDING, job_status, f"controller is retrying: {msg}", arn)
    if job_status:
        return Observation(State.PENDING, job_status, job_status, arn)
    return Observation(State.PENDING, None, "waiting for the controller to create the job", arn)


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
        return self.api.create_namespaced_custom_object(*self._args(), dict(manifest),
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
         ) -> tuple[Observation, dict[str, Any]]:
    """Poll until the job is COMPLETED (returned with the resource) or ends otherwise (a DummyTrainingError)."""
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
                raise JobFailedError(f"processing job {resource.name} was rejected (ACK.Terminal): {seen.message}")
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


def resolve(api: Any, namespace: str, config: Any) -> _Resolution:
    """Which resource this launch is, with the SageMaker launcher's rules (``sagemaker_job.resolve_job``):
    no resource -> create; Completed or still running -> re-attach; Failed / Stopped / rejected / being deleted
    -> for a derived name try the next attempt name (``-a2`` ...), for an explicit ``job_name`` stop and ask
    for a new name."""
    from dummy_training import sagemaker_job
    from dummy_training.processing_job import validate_job_name

    if config.job_name:
        names = [validate_job_name(config.job_name)]
    else:
        base = (sagemaker_job.default_job_name(*config.job_name_parts) if config.job_name_parts
                else sagemaker_job.unique_job_name())
        names = [base] + [f"{base}-a{n}" for n in range(2, sagemaker_job.MAX_ATTEMPTS + 1)]
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
        seen = observe(obj)
        deleting = bool((obj.get("metadata") or {}).get("deletionTimestamp"))
        if seen.state in (State.PENDING, State.COMPLETED) and not deleting:
            return _Resolution(name, resource, obj)
        ended = "is being deleted" if deleting else f"ended {seen.state.value} ({seen.message})"
        if config.job_name:
            raise JobFailedError(f"{resource.describe()} already exists and {ended}; SageMaker job names are "
                                 "unique: pass a new job_name (or leave it empty to derive one)")
        log.info("%s exists and %s: trying the next attempt name", resource.describe(), ended)
    raise JobFailedError(f"ProcessingJobs {names[0]} .. {names[-1]} all ended Failed, Stopped or rejected; "
                         "pass a new job_name to run again")


def staging_prefix(config: Any, name: str) -> str:
    """``<s3_prefix>/<job-name>/``, attempt-independent so a retry finds what the first attempt uploaded."""
    from dummy_training import aws, sagemaker_job

    base = name if config.job_name or not config.job_name_parts else sagemaker_job.default_job_name(
        *config.job_name_parts)
    return aws.join_s3(config.staging_base(), base)


def make_manifest(config: Any, name: str, s3: Any, options: AckOptions, namespace: str | None) -> dict[str, Any]:
    """Stage the inputs (``staging.stage_inputs``) and build the manifest of job ``name``."""
    from dummy_training import sagemaker_job, staging

    staged = staging.stage_inputs(s3, model=config.model, hyperparameters=config.hyperparameters,
                                  hyperparameters_json=config.hyperparameters_json,
                                  staging_prefix=staging_prefix(config, name), s3_direct=config.s3_direct)
    spec = sagemaker_job.build_spec(config, name, staged)
    return build_manifest(spec, namespace=namespace, labels=options.labels, annotations=options.annotations)


def launch(config: Any, options: AckOptions | None = None, *, api: Any = None, s3: Any = None,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Any:
    """Run (or re-attach to) the ProcessingJob for ``config`` (a ``sagemaker_job.LaunchConfig``: the same
    inputs as the SageMaker backend) and deliver its output as a ``sagemaker_job.LaunchResult``.

    ``api`` is a ``CustomObjectsApi`` (default: from in-cluster config or the kubeconfig), ``s3`` a boto3 S3
    client (default: from the config's region/endpoint/assume-role)."""
    from dummy_training import aws, sagemaker_job

    options = options or AckOptions()
    if not config.model:
        raise InvalidInputError(f"{contract.MODEL.flag} is required")
    config.staging_base()
    sagemaker_job.build_spec(config, "validation-only").validate()  # fail before touching any cluster or bucket
    namespace = options.namespace or default_namespace(options.kubeconfig, options.context)
    if api is None:
        from kubernetes import client

        api = client.CustomObjectsApi(load_api_client(options.kubeconfig, options.context))
    if s3 is None:
        sess = aws.session(config.region, config.assume_role_arn)
        s3 = aws.client("s3", region=config.region, endpoint_url=config.endpoint_url, boto_session=sess)
    timeout = config.timeout_seconds or (config.max_runtime_seconds + sagemaker_job.TIMEOUT_MARGIN)
    policy = WaitPolicy(interval=config.poll_interval, max_interval=max(config.poll_interval,
                                                                        config.max_poll_interval),
                        timeout=timeout, delete_wait=config.stop_wait_seconds)
    owned: list[ProcessingJobResource] = []  # what an interrupt or the timeout deletes
    try:
        res = resolve(api, namespace, config)
        resource = res.resource
        reused = res.existing is not None and observe(res.existing).state is State.COMPLETED
        if res.existing is None:
            manifest = make_manifest(config, res.name, s3, options, namespace)
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
                log.info("%s was created concurrently: re-attaching", resource.describe())
        else:
            owned.append(resource)
            log.info("re-attaching to existing %s (%s)", resource.describe(), observe(res.existing).message)
        log.info("watch it with: kubectl get %s %s -n %s -w", contract.ACK_PLURAL, resource.name, namespace)
        seen, obj = wait(resource, policy, sleep=sleep, clock=clock)
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
    result = sagemaker_job.LaunchResult(
        job_name=(obj.get("spec") or {}).get("processingJobName") or res.name,
        job_arn=seen.arn or "",
        model_s3_uri=output_model_uri_from_resource(obj),
        status=seen.job_status or "Completed",
        reused=reused,
    )
    log.info("processing job %s Completed; model at %s", result.job_name, result.model_s3_uri)
    if config.model_output_dir:
        result.local_model_path = sagemaker_job.download_model(s3, result.model_s3_uri, config.model_output_dir)
    return result


# --------------------------------------------------------------------------------------- KFP component runtime
def run_component(*, output_model: Any, model_s3_uri_path: str, job_arn_path: str, namespace: str = "",
                  download_model: bool = True, environment: Mapping[str, Any] | None = None,
                  tags: Mapping[str, Any] | None = None, subnets: list[str] | None = None,
                  security_group_ids: list[str] | None = None,
                  job_name_parts: tuple[str, ...] = (), timeout_seconds: float = 0, **fields: Any) -> Any:
    """The body of the ``ack_dummy_training`` KFP component (kfp-free: it runs inside the executor).

    Empty strings mean "not given" (KFP parameters have no None); SIGTERM/SIGINT delete the resource as in
    the CLI; an expected error fails the task with one line and the CLI's exit code. Fills ``output_model``
    (the downloaded model.tar.gz when ``download_model``, and metadata: S3 URI, job name and ARN) and writes
    the two string outputs."""
    import threading

    from dummy_training import cli, sagemaker_job

    cli.setup_logging()
    if threading.current_thread() is threading.main_thread():
        cli.install_signal_handlers()
    config_kwargs = {k: (v if v != "" else None) for k, v in fields.items()}
    config = sagemaker_job.LaunchConfig(
        **config_kwargs,
        environment={str(k): str(v) for k, v in (environment or {}).items()},
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        subnets=[str(s) for s in subnets or []],
        security_group_ids=[str(s) for s in security_group_ids or []],
        job_name_parts=tuple(p for p in job_name_parts if p),
        model_output_dir=output_model.path if download_model else None,
        timeout_seconds=timeout_seconds or None,
        stream_logs=False,
    )
    try:
        result = launch(config, AckOptions(namespace=namespace or None))
    except USER_ERRORS as exc:
        print(f"dummy-training: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
    output_model.metadata.update({**result.metadata(), "status": result.status, "reused": result.reused})
    for path, value in ((model_s3_uri_path, result.model_s3_uri), (job_arn_path, result.job_arn)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(value)
    return result
