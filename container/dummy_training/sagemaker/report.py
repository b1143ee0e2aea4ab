"""The launchers' report: what a person needs to find and judge the remote job, for the SageMaker and the ACK
launcher alike (``ack`` imports this module; this module imports nothing of ``ack``).

``JobSummary`` is filled by a launcher while it runs (``launch(..., job=summary)``): from every
DescribeProcessingJob (``update_from_description``) or, for ACK, from the ProcessingJob resource's status
(``dummy_training.ack.launcher.update_from_resource``). It is complete when the launch returns and as complete as
it got when the launch raised, so a failed job still gets its report (the CLI's ``--report``; a KFP task that
fails has its outputs discarded, so the component also logs the report). ``render`` turns it into Markdown,
``metrics`` into the scalar figures of ``Output[Metrics]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from dummy_training import contract
from dummy_training.errors import USER_ERRORS
from dummy_training.step.report import md_table, md_text, size_text, summary_metrics

_SAFE_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_SAFE_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


log = logging.getLogger(__name__)
T = TypeVar("T")


def console_url(region: str, job_name: str) -> str:
    """The processing job in the SageMaker console."""
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/processing-jobs/{job_name}"


def logs_console_url(region: str, job_name: str) -> str:
    """The job's log streams (``<job-name>/...`` in the processing jobs' log group) in the CloudWatch console."""
    group = contract.PROCESSING_JOB_LOG_GROUP.replace("/", "$252F")
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/"
            f"log-group/{group}$3FlogStreamNameFilter$3D{job_name}$252F")


def region_of_arn(arn: str) -> str:
    """``arn:aws:sagemaker:us-west-2:123456789012:processing-job/x`` -> ``us-west-2`` ("" when not an ARN)."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" else ""


@dataclass
class JobSummary:
    """What is known about one remote processing job; every field may still be empty when a launch failed early."""

    backend: str  # "SageMaker" or "ACK"
    job_name: str = ""
    job_arn: str = ""
    region: str = ""
    status: str = ""
    failure_reason: str = ""
    instance_type: str = ""
    instance_count: int = 0
    created: datetime | None = None
    started: datetime | None = None  # ProcessingStartTime (SageMaker only: the ACK status has no times)
    ended: datetime | None = None  # ProcessingEndTime
    reused: bool = False
    model_s3_uri: str = ""
    local_model_path: str | None = None
    wait_seconds: float = 0.0  # how long the launcher ran (staging, waiting, downloading)
    resource: str = ""  # ACK: the ProcessingJob custom resource
    conditions: list[tuple[str, str, str]] = field(default_factory=list)  # ACK: (type, status, message)
    error: str = ""  # the launch's one-line error, when it failed
    # What the job's own repack wrote (``--report`` / ``--result-json`` in its request), read back by the launcher:
    repack_report_uri: str = ""  # where the job's report is (S3)
    repack_report: str | None = None  # its report.md: the decision and why, inputs, output, figures, members
    repack_result: dict[str, Any] | None = None  # its result.json (``RepackResult.summary()``)
    repack_note: str = ""  # why there is no job report to show, when the launcher looked for one

    @property
    def job_seconds(self) -> float | None:
        """Processing start to end (the time the instances ran the container), when the job reported both."""
        if self.started and self.ended:
            return max(0.0, (self.ended - self.started).total_seconds())
        return None

    @property
    def billable_seconds(self) -> float | None:
        """An estimate of the instance-seconds billed: processing time times the instance count."""
        seconds = self.job_seconds
        return None if seconds is None else seconds * max(1, self.instance_count)

    def update_from_description(self, desc: dict[str, Any]) -> None:
        """Take what a DescribeProcessingJob answer says."""
        self.job_name = desc.get("ProcessingJobName") or self.job_name
        self.job_arn = desc.get("ProcessingJobArn") or self.job_arn
        self.region = self.region or region_of_arn(self.job_arn)
        self.status = desc.get("ProcessingJobStatus") or self.status
        self.failure_reason = desc.get("FailureReason") or desc.get("ExitMessage") or self.failure_reason
        cluster = (desc.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        self.instance_type = cluster.get("InstanceType") or self.instance_type
        self.instance_count = int(cluster.get("InstanceCount") or self.instance_count)
        for attr, key in (("created", "CreationTime"), ("started", "ProcessingStartTime"),
                          ("ended", "ProcessingEndTime")):
            if isinstance(desc.get(key), datetime):
                setattr(self, attr, desc[key])

    def console_url(self) -> str | None:
        """The job in the SageMaker console, when the region and name are known (and plain)."""
        return console_url(self.region, self.job_name) if self._linkable() else None

    def logs_url(self) -> str | None:
        """The job's CloudWatch log streams (``/aws/sagemaker/ProcessingJobs``, ``<job-name>/...``)."""
        return logs_console_url(self.region, self.job_name) if self._linkable() else None

    def _linkable(self) -> bool:
        return bool(_SAFE_REGION.match(self.region or "") and _SAFE_JOB_NAME.match(self.job_name or ""))


def _time(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "—"


def _status_line(job: JobSummary) -> str:
    status = job.status or ("not created" if not job.job_arn else "unknown")
    if job.error and job.status in ("", "Completed"):
        status = f"{status} (launch failed)" if job.status else "launch failed"
    line = f"**Status: {md_text(status)}.**"
    if job.error:
        line += f" {md_text(job.error, limit=2000)}"
    elif job.reused:
        line += " The job had already completed: reused, no new job ran."
    elif job.status == "Completed":
        line += " The repacked model is at " + (md_text(job.model_s3_uri) if job.model_s3_uri else "?") + "."
    decision = (job.repack_result or {}).get("decision")
    if decision:
        line += f" The job's repack: **{md_text(decision)}** (its own report is below)."
    return line


def demote_headings(markdown: str, levels: int = 1) -> str:
    """``markdown`` with every ATX heading ``levels`` deeper (``#`` -> ``##``), fenced code blocks left alone: a
    report nested under another's heading. Outside code blocks ``<`` becomes ``&lt;``: the nested report is read
    from S3, and the repack's own renderer never writes a raw ``<`` there, so whatever else wrote one gets no raw
    HTML into the page."""
    out: list[str] = []
    fence = ""
    for line in markdown.splitlines():
        stripped = line.lstrip(" ")
        if fence:
            if stripped.startswith(fence) and not stripped.rstrip().strip("`"):
                fence = ""
        elif stripped.startswith("```"):
            fence = stripped[:len(stripped) - len(stripped.lstrip("`"))]
        else:
            if len(line) - len(stripped) < 4 and stripped.startswith("#"):
                hashes = len(stripped) - len(stripped.lstrip("#"))
                if hashes <= 6 and (len(stripped) == hashes or stripped[hashes] in " \t"):
                    line = "#" * min(6, hashes + levels) + stripped[hashes:]
            line = line.replace("<", "&lt;")
        out.append(line)
    return "\n".join(out)


def render(job: JobSummary, *, step_report: str | None = None) -> str:
    """The launcher's report as Markdown; ``step_report`` (default: ``job.repack_report``, the job's own repack
    report the launcher read back) goes below, one heading level down; without one, ``job.repack_note`` says
    why."""
    title = f"dummy-training on {job.backend}: {job.status or 'no job'}"
    parts = [f"# {md_text(title)}", _status_line(job)]

    billable = job.billable_seconds
    if billable is not None:
        count = max(1, job.instance_count)
        billable_text = (f"≈ {billable:.0f} instance-seconds ({job.job_seconds:.0f} s × {count} instance"
                         f"{'s' if count > 1 else ''})")
    elif job.backend == "ACK":
        billable_text = "not in the ACK status (no processing times): see the job in the SageMaker console"
    else:
        billable_text = "— (the job has not run)" if not job.started else "— (the job has not ended)"
    rows: list[list[str]] = [
        ["Job name", md_text(job.job_name) if job.job_name else "—"],
        ["ARN", md_text(job.job_arn) if job.job_arn else "—"],
        ["Status", md_text(job.status) if job.status else "—"],
        ["Failure reason", md_text(job.failure_reason, limit=2000) if job.failure_reason else "—"],
        ["Region", md_text(job.region) if job.region else "—"],
        ["Instances", f"{job.instance_count} × {md_text(job.instance_type)}" if job.instance_type else "—"],
        ["Created", _time(job.created)],
        ["Processing", f"{_time(job.started)} → {_time(job.ended)}" if job.started else "—"],
        ["Billable", billable_text],
        ["Launcher ran", f"{job.wait_seconds:.1f} s"],
        ["Reused", "yes: it had already completed" if job.reused else "no"],
        ["Model (S3)", md_text(job.model_s3_uri) if job.model_s3_uri else "—"],
    ]
    if job.local_model_path:
        size = Path(job.local_model_path).stat().st_size if Path(job.local_model_path).is_file() else None
        rows.append(["Downloaded to", md_text(job.local_model_path)
                     + (f" ({size_text(size)})" if size is not None else "")])
    if job.resource:
        rows.append(["Kubernetes resource", md_text(job.resource)])
    if job.repack_report_uri:
        rows.append(["The job's report (S3)", md_text(job.repack_report_uri)])
    parts += ["## Job", md_table(["Job", "Value"], rows)]

    links = [f"[{text}]({url})" for text, url in (("The job in the SageMaker console", job.console_url()),
                                                   ("Its CloudWatch log streams", job.logs_url())) if url]
    if links:
        parts.append("Links: " + " · ".join(links))
    if job.conditions:
        parts += ["## ACK conditions", md_table(["Type", "Status", "Message"], [
            [md_text(t), md_text(s), md_text(m, limit=1000)] for t, s, m in job.conditions])]
    step_report = job.repack_report if step_report is None else step_report
    if step_report:
        parts.append(demote_headings(step_report).rstrip("\n"))
    elif job.repack_note:
        parts += ["## The job's repack", md_text(job.repack_note, limit=2000)]
    return "\n\n".join(parts) + "\n"


def metrics(job: JobSummary) -> dict[str, float]:
    """Scalar figures of a launch (``Output[Metrics]``): what the KFP UI compares across runs."""
    out: dict[str, float] = {"seconds": round(job.wait_seconds, 3), "reused": 1.0 if job.reused else 0.0,
                             "instance_count": float(job.instance_count)}
    if job.job_seconds is not None:
        out["job_seconds"] = round(job.job_seconds, 3)
    if job.billable_seconds is not None:
        out["billable_seconds"] = round(job.billable_seconds, 3)
    if job.repack_result:  # the figures of the job's own repack; its "seconds" are the repack's, not the launch's
        out.update({("repack_seconds" if name == "seconds" else name): value
                    for name, value in summary_metrics(job.repack_result).items()})
    if job.local_model_path and Path(job.local_model_path).is_file():
        out["output_bytes"] = float(Path(job.local_model_path).stat().st_size)
    return out


def reporting(job: JobSummary, run: Callable[[], T], write: Callable[[JobSummary], None]) -> T:
    """Run a launch that fills ``job``, and hand ``job`` to ``write`` whether the launch succeeded or failed.

    On a failure the launch's error (recorded in ``job.error``) is re-raised; a report that cannot be written then
    is logged, not raised, so it never hides why the launch failed. Used by the launchers' CLI (``--report``) and
    their KFP components (``Output[Markdown]`` and ``Output[Metrics]``)."""
    try:
        result = run()
    except USER_ERRORS as exc:
        job.error = str(exc)
        try:
            write(job)
        except USER_ERRORS as write_exc:
            log.warning("could not write the report: %s", write_exc)
        raise
    write(job)
    return result
