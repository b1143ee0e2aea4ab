"""What the KFP components run inside the container: kept apart from the component definitions.

The component functions (``dummy_training.kfp.components``) are thin: they import this module and call it:
``repack_into_artifact`` / ``repack_s3`` (the native components), ``check_model`` / ``check_s3_model`` (the
check step), ``run_launcher_component`` (the two launchers' components).
This module must not use ``kfp.dsl`` at import time: inside a running component (``_KFP_RUNTIME=true``)
``kfp.dsl`` is a reduced runtime module without ``dsl.component``. So no kfp import here at all; artifacts
arrive as objects with ``.path``/``.uri``/``.metadata`` (and ``.log_metric`` for ``Metrics``).

Every component writes a report (``Output[Markdown]``, rendered by ``step.report`` / ``sagemaker.report``) and
metrics (``Output[Metrics]``). When a launcher's job fails the report is still written, but KFP does not upload
the outputs of a failed task: so it is also logged, where the task's log shows it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import threading
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from dummy_training import __version__, aws, contract
from dummy_training.ack import launcher as ack_launcher
from dummy_training.console import fail, install_signal_handlers, setup_logging
from dummy_training.ends.local_file import sha256_file
from dummy_training.errors import USER_ERRORS, InputNotFoundError, InvalidInputError, RuntimeIOError
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker import report as job_report
from dummy_training.sagemaker.launcher import LaunchConfig, LaunchResult
from dummy_training.step import report as step_report
from dummy_training.step.repack import RepackResult, run_repack

log = logging.getLogger("dummy_training.kfp")


#: The inputs of each component family, for ``component_message``.
NATIVE_INPUTS = (contract.MODEL.name, contract.HYPERPARAMETERS.name, contract.HYPERPARAMETERS_JSON.name)
S3_INPUTS = (*NATIVE_INPUTS, contract.OUTPUT_URI.name, contract.ENDPOINT_URL.name)
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


#: The launcher components' inputs: LaunchConfig's fields (the component inputs of the same names) and theirs.
LAUNCHER_INPUTS = (*(f.name for f in dataclasses.fields(LaunchConfig)), "namespace", "download_model")


def component_message(text: str, inputs: Iterable[str]) -> str:
    """An error of the step or a launcher as a component's user reads it: ``--hyperparameters-json`` (or any
    flag spelling an input's name) becomes input `hyperparameters_json`, and the container paths the CLI
    searches (``/opt/ml/...``, ``./model.tar.gz``), which a component's user never sets, are left out."""
    names = set(inputs)
    aliases = {"pretrained-model-path": contract.MODEL.name}

    def as_input(match: re.Match[str]) -> str:
        name = aliases.get(match.group(1), match.group(1).replace("-", "_"))
        return f"input `{name}`" if name in names else match.group(0)

    text = _FLAG.sub(as_input, text)
    paths = {str(c.path) for c in (*contract.model_candidates(), *contract.hyperparameters_candidates())}
    for path in sorted(paths, key=len, reverse=True):
        text = text.replace(f", {path}", "").replace(f"{path}, ", "").replace(path, "")
    return text


def fail_component(exc: BaseException, code: int, inputs: Iterable[str]) -> NoReturn:
    """``console.fail`` with the message in the component's terms (``component_message``)."""
    fail(component_message(str(exc), inputs), code)


def write_outputs(report: Any, metrics: Any, text: str, figures: Mapping[str, float]) -> None:
    """Write the Markdown ``text`` into ``report`` (an ``Output[Markdown]``) and log ``figures`` on ``metrics``
    (an ``Output[Metrics]``); either may be None (a caller without them)."""
    if report is not None:
        step_report.write_report(report.path, text)
    if metrics is not None:
        for name, value in figures.items():
            metrics.log_metric(name, value)


def _repack_outputs(result: RepackResult, report: Any, metrics: Any, artifact_uri: str | None = None) -> None:
    write_outputs(report, metrics, step_report.render(result, artifact_uri=artifact_uri), step_report.metrics(result))


def _repack_metadata(result: RepackResult) -> dict[str, Any]:
    """An output model artifact's metadata from a repack (the native and the S3 component alike)."""
    return {
        "filename": contract.MODEL_FILENAME,
        "decision": result.decision,
        "method": result.method,
        "size": result.output_size,
        "member_count": result.output_member_count,
        "source": result.model_location,
        "hyperparameters_source": result.hyperparameters_location or "",
        "dummy_training_version": __version__,
    }


def _install_signal_handlers() -> None:
    """SIGTERM/SIGINT raise ``Interrupted`` (exit 130, cleanup done), as in the CLI: the kubelet sends SIGTERM to
    the task's process when the run is cancelled or the pod deleted. Only from the main thread (tests call the
    component functions from other threads too)."""
    if threading.current_thread() is threading.main_thread():
        install_signal_handlers()


def repack_into_artifact(
    model_path: str, hyperparameters_path: str | None, hyperparameters_json: str, output: Any,
    report: Any = None, metrics: Any = None,
) -> dict[str, Any]:
    """Run the engine from local paths into ``output`` (a KFP ``Output[Model]``): its path is the repacked
    model.tar.gz itself; set and return its metadata; write the ``report`` (``Output[Markdown]``) and the
    ``metrics`` (``Output[Metrics]``). SIGTERM (a cancelled run, a deleted pod) ends it with exit 130 and no
    output."""
    setup_logging()
    _install_signal_handlers()
    target = Path(output.path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        result = run_repack(
            model=model_path,
            hyperparameters=hyperparameters_path or None,
            hyperparameters_json=hyperparameters_json or None,
            output_path=str(target),
        )
    except USER_ERRORS as exc:
        fail_component(exc, exc.exit_code, NATIVE_INPUTS)
    except OSError as exc:
        fail_component(exc, 3, NATIVE_INPUTS)
    result.sha256 = sha256_file(result.output)
    metadata = {**_repack_metadata(result), "sha256": result.sha256}
    output.metadata.update(metadata)
    log.info("output artifact %s: %s", output.uri, json.dumps(metadata, sort_keys=True))
    _repack_outputs(result, report, metrics, artifact_uri=getattr(output, "uri", None))
    return metadata


def repack_s3(model: str, hyperparameters: str, hyperparameters_json: str, output_uri: str, endpoint_url: str,
              report: Any = None, metrics: Any = None, output_model: Any = None) -> str:
    """Run the engine S3 to S3 (nothing downloaded into the pod); write the report and metrics; point
    ``output_model`` (an ``Output[Model]``) at the written object (``point_at_s3``) with the native component's
    metadata; return the output URI. SIGTERM ends it with exit 130, no object written."""
    setup_logging()
    _install_signal_handlers()
    try:
        for name, value in ((contract.MODEL.name, model), (contract.OUTPUT_URI.name, output_uri)):
            if not value.startswith("s3://"):
                raise InvalidInputError(f"input `{name}` must be an s3:// URI, got {value!r}")
        result = run_repack(
            model=model,
            hyperparameters=hyperparameters or None,
            hyperparameters_json=hyperparameters_json or None,
            output_uri=output_uri,
            endpoint_url=endpoint_url or None,
        )
    except USER_ERRORS as exc:
        fail_component(exc, exc.exit_code, S3_INPUTS)
    log.info("output: %s (%s, %d members)", result.output, result.decision, result.output_member_count)
    if output_model is not None:
        point_at_s3(output_model, result.output)
        # no sha256: the kept prefix was copied server-side, never read back
        output_model.metadata.update({**_repack_metadata(result), contract.OUTPUT_MODEL_S3_URI: result.output})
    _repack_outputs(result, report, metrics)
    return result.output


def _archive_file(path: str | Path) -> Path:
    p = Path(path)
    return p / contract.MODEL_FILENAME if p.is_dir() else p


def scan_hyperparameters(stream: Any, label: str) -> dict[str, Any]:
    """Read a model.tar.gz stream as a packaging step would; return its root hyperparameters.json (a JSON object).

    Deliberately independent of the engine (plain ``tarfile``): it checks the engine's output, not itself.
    Raises ``InputNotFoundError`` when the archive has no root hyperparameters.json and ``InvalidInputError``
    when the archive or the JSON is unreadable.
    """
    found: dict[str, Any] | None = None
    members = 0
    try:
        # gzip.GzipFile, not tarfile's "r|gz": it verifies the CRC and length, and a truncated stream raises
        # instead of reading as a shorter archive
        with gzip.GzipFile(fileobj=stream, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                members += 1
                if member.name in contract.ROOT_HYPERPARAMETERS_NAMES and member.isfile():
                    fh = tar.extractfile(member)
                    data = json.loads(fh.read()) if fh else None
                    if not isinstance(data, dict):
                        raise InvalidInputError(f"{label}: {member.name} is not a JSON object")
                    found = data
            while gz.read(1 << 20):  # the end-of-archive padding, then the gzip trailer check
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{label}: unreadable archive or JSON: {exc}") from None
    if found is None:
        raise InputNotFoundError(f"{label}: no root {contract.HYPERPARAMETERS_FILENAME} among {members} members")
    return found


def check_archive(path: str | Path) -> dict[str, Any]:
    """``scan_hyperparameters`` of a local model.tar.gz (or of a directory holding one)."""
    archive = _archive_file(path)
    if not archive.is_file():
        raise InputNotFoundError(f"no {contract.MODEL_FILENAME} at {archive}")
    with open(archive, "rb") as fh:
        return scan_hyperparameters(fh, str(archive))


def check_s3_archive(uri: str, endpoint_url: str | None = None) -> dict[str, Any]:
    """``scan_hyperparameters`` of an S3 object, streamed (nothing written to disk)."""
    bucket, key = aws.parse_s3_uri(uri)
    s3 = aws.client("s3", endpoint_url=endpoint_url or None)
    with aws.translating(f"read {uri}"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return scan_hyperparameters(body, uri)
        finally:
            body.close()


def check_model(model_path: str) -> str:
    """The check step's body: returns the hyperparameters as canonical JSON, fails the task when absent."""
    setup_logging()
    try:
        hyperparameters = check_archive(model_path)
    except USER_ERRORS as exc:
        fail(exc, exc.exit_code)
    text = json.dumps(hyperparameters, sort_keys=True)
    log.info("check: %s has a root %s: %s", _archive_file(model_path), contract.HYPERPARAMETERS_FILENAME, text)
    return text


def check_s3_model(model_s3_uri: str, endpoint_url: str = "") -> str:
    """The S3 check step's body: like ``check_model`` for an object in S3."""
    setup_logging()
    try:
        hyperparameters = check_s3_archive(model_s3_uri, endpoint_url)
    except USER_ERRORS as exc:
        fail(exc, exc.exit_code)
    text = json.dumps(hyperparameters, sort_keys=True)
    log.info("check: %s has a root %s: %s", model_s3_uri, contract.HYPERPARAMETERS_FILENAME, text)
    return text


# ------------------------------------------------------------------- the launchers' output artifact
def _download_dir(output_model: Any) -> Path:
    """Where a launcher downloads the model before it becomes ``output_model`` itself: a hidden directory beside
    the artifact's path (same file system, so the last step is a rename)."""
    target = Path(output_model.path)
    return target.parent / f".{target.name}.download"


def _into_artifact(result: LaunchResult, job: job_report.JobSummary, output_model: Any) -> LaunchResult:
    """Rename a downloaded ``<dir>/model.tar.gz`` to ``output_model.path``: the artifact is the archive itself
    (what ``Input[Model].path``, ``ModelDataUrl`` and a packaging step take), not a directory holding it."""
    if not result.local_model_path:
        return result
    target = Path(output_model.path)
    try:
        if target.is_dir():  # a retried task's leftover
            shutil.rmtree(target)
        os.replace(result.local_model_path, target)
        Path(result.local_model_path).parent.rmdir()
    except OSError as exc:
        raise RuntimeIOError(f"cannot write the output model {target}: {exc.strerror}") from None
    result.local_model_path = job.local_model_path = str(target)
    return result


def point_at_s3(output_model: Any, s3_uri: str) -> bool:
    """Make ``output_model`` (not downloaded) name the model.tar.gz object itself, where the runner allows it;
    return whether it does.

    kfp.local takes any uri. The KFP backend's launcher does not: it uploads every output artifact to its uri and
    refuses one outside the pipeline root ("does not have expected bucket prefix"), failing the task. Its uri for
    the artifact is ``<pipeline root>/.../<run>/<task>/output_model``, so an object under that uri less its last
    three parts is under the pipeline root, whatever the root is: only then is the uri changed; otherwise it stays
    (an artifact with no content) and the object is in the metadata ``model_s3_uri`` and the ``model_s3_uri``
    output."""
    assigned = str(getattr(output_model, "uri", "") or "")
    if "://" in assigned and not s3_uri.startswith(assigned.rsplit("/", 3)[0] + "/"):
        log.warning("output_model keeps its KFP uri %s: the KFP launcher refuses an output artifact outside the "
                    "pipeline root, and %s is not under it (use an s3_output_prefix under the pipeline root, or "
                    "read metadata model_s3_uri)", assigned, s3_uri)
        return False
    output_model.uri = s3_uri
    return True


def _launcher_metadata(result: LaunchResult) -> dict[str, Any]:
    """A launcher's ``output_model`` metadata: the native component's (size, sha256, decision, method, members),
    from the downloaded file and the job's own result.json, plus the S3 URI, job name and ARN."""
    repack = (result.job.repack_result if result.job else None) or {}
    metadata: dict[str, Any] = {"filename": contract.MODEL_FILENAME, **result.metadata(),
                                "dummy_training_version": __version__}
    for key, name in (("decision", "decision"), ("method", "method"), ("output_size", "size"),
                      ("sha256", "sha256"), ("member_count", "member_count")):
        if repack.get(key) is not None:
            metadata[name] = repack[key]
    if result.local_model_path and Path(result.local_model_path).is_file():
        metadata["size"] = Path(result.local_model_path).stat().st_size
        metadata["sha256"] = sha256_file(result.local_model_path)
    return metadata


# ----------------------------------------------------------------------------- the launcher components
def launch_with_report(run: Any, job: job_report.JobSummary, report: Any, metrics: Any) -> LaunchResult:
    """``run()`` a launch that fills ``job``; write the report and metrics whether it succeeds or not. A failure
    ends the task (one line, the CLI's exit code) after logging the report: KFP uploads no output of a failed
    task, so the log is where a person finds it."""
    try:
        return job_report.reporting(
            job, run, lambda j: write_outputs(report, metrics, job_report.render(j), job_report.metrics(j)))
    except USER_ERRORS as exc:
        log.info("report (KFP does not upload the outputs of a failed task):\n%s", job_report.render(job))
        fail_component(exc, exc.exit_code, LAUNCHER_INPUTS)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def task_job_name_parts(output_model: Any) -> tuple[str, ...]:
    """The parts a launcher's job name is derived from when none is given: what KFP gives this task.

    KFP names each output artifact ``<task root>/<output name>``, and the task root is, on a KFP backend (2.14 to
    2.17: the driver's ``provisionOutputs``), ``<pipeline root>/<pipeline>/<run id>/<task name>/<salt>`` with a
    uuid the driver draws once per task (per ``ParallelFor`` iteration too) and Argo's retries of the task's pod
    reuse; under ``kfp.local``, ``<pipeline root>/<pipeline>-<time>/<task name>``. So the task name plus a hash of
    the task root is one name per task of one run, the same on every retry: a retried task re-attaches to its
    job. The placeholders are no such key: ``dsl.PIPELINE_TASK_ID_PLACEHOLDER`` is filled by the 2.17 driver with
    the id of the task's enclosing DAG, shared by sibling tasks, and a placeholder as an input's *default* (which
    would spare the wiring) is filled by kfp.local but not by the driver, which leaves an omitted optional input
    to the component: it would see the literal ``{{$.pipeline_job_uuid}}``. ``()`` when the artifact has no uri
    (the launcher then draws a fresh name)."""
    uri = str(getattr(output_model, "uri", "") or "").rstrip("/")
    root = uri.rsplit("/", 1)[0] if "/" in uri else ""
    segments = [s for s in root.split("/") if s and not s.endswith(":")]
    if not segments:
        return ()
    task = segments[-2] if _UUID.fullmatch(segments[-1]) and len(segments) > 1 else segments[-1]
    return task, hashlib.sha256(root.encode()).hexdigest()[:10]


#: The launcher components: what each backend's ``launch`` is given.
LAUNCHER_BACKENDS = ("sagemaker", "ack")


def run_launcher_component(backend: str, *, output_model: Any, model_s3_uri_path: str, job_arn_path: str,
                           namespace: str = "", download_model: bool = True,
                           environment: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
                           subnets: list[str] | None = None, security_group_ids: list[str] | None = None,
                           timeout_seconds: float = 0, report: Any = None, metrics: Any = None,
                           **fields: Any) -> LaunchResult:
    """The body of both launcher components, ``sagemaker_dummy_training`` and ``ack_dummy_training`` (kfp-free:
    it runs inside the executor); ``backend`` is ``"sagemaker"`` or ``"ack"``.

    Empty strings mean "not given" (KFP parameters have no None); with no ``job_name`` the name comes from
    ``task_job_name_parts``. SIGTERM/SIGINT stop the job (SageMaker) or delete the resource (ACK), as in the CLI;
    an expected error fails the task with one line and the CLI's exit code. Fills ``output_model`` (the
    downloaded model.tar.gz when ``download_model``, else its S3 object where the runner allows; metadata: size,
    sha256, decision, S3 URI, job name and ARN), writes the two string outputs, the ``report`` and the
    ``metrics``."""
    if backend not in LAUNCHER_BACKENDS:  # pragma: no cover - the two components pass a literal
        raise ValueError(f"unknown launcher backend {backend!r}")
    setup_logging()
    _install_signal_handlers()
    config_kwargs = {k: (v if v != "" else None) for k, v in fields.items()}
    config = LaunchConfig(
        **config_kwargs,
        environment={str(k): str(v) for k, v in (environment or {}).items()},
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        subnets=[str(s) for s in subnets or []],
        security_group_ids=[str(s) for s in security_group_ids or []],
        job_name_parts=() if config_kwargs.get("job_name") else task_job_name_parts(output_model),
        model_output_dir=str(_download_dir(output_model)) if download_model else None,
        timeout_seconds=timeout_seconds or None,
        stream_logs=backend == "sagemaker",  # ACK: the controller's job; its logs are in CloudWatch, linked
    )
    job = job_report.JobSummary(backend=sagemaker_launcher.BACKEND if backend == "sagemaker" else
                                ack_launcher.BACKEND)

    def launch() -> LaunchResult:
        if backend == "sagemaker":
            result = sagemaker_launcher.launch(config, job=job)
        else:
            result = ack_launcher.launch(config, ack_launcher.AckOptions(namespace=namespace or None), job=job)
        return _into_artifact(result, job, output_model)

    result = launch_with_report(launch, job, report, metrics)
    if not download_model:
        point_at_s3(output_model, result.model_s3_uri)
    output_model.metadata.update({**_launcher_metadata(result), "status": result.status, "reused": result.reused})
    for path, value in ((model_s3_uri_path, result.model_s3_uri), (job_arn_path, result.job_arn)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(value)
    return result
