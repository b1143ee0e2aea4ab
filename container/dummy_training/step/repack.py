"""The step: resolve inputs, run the engine between a source and a sink, publish or discard, and log it all.

``run_repack`` is what the CLI, the native KFP component and the remote job's container all call.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from dummy_training import __version__, contract
from dummy_training.console import escape_controls
from dummy_training.ends.base import ByteSource, Sink
from dummy_training.ends.factory import open_sink, open_source
from dummy_training.errors import InputNotFoundError, InvalidInputError
from dummy_training.step.resolve import (
    hyperparameters_search_description,
    resolve_hyperparameters,
    resolve_model,
    resolve_output,
    same_location,
)

log = logging.getLogger("dummy_training.step.repack")

#: Members listed one by one in the log; past this the list is summarised.
LISTED_MEMBERS = 200
PROGRESS_INTERVAL_SECONDS = 5.0


@dataclass
class RepackResult:
    decision: str  # contract.DECISION_INJECTED | contract.DECISION_PRESERVED
    output: str  # local path or s3:// URI of the written model.tar.gz
    output_size: int
    member_count: int
    members: list = field(repr=False)  # engine.MemberInfo, at most the first few hundred
    method: str  # "copy" | "splice" | "reencode"
    elapsed_seconds: float
    model_location: str
    hyperparameters_location: str | None
    input_size: int = 0
    uncompressed_size: int = 0
    kept_prefix: int = 0
    bytes_read: int = 0
    bytes_copied: int = 0
    bytes_written: int = 0
    scanner: str = ""
    publish_seconds: float = 0.0  # waiting for the sink to publish: the last copies, fsync / S3 completion
    model_label: str = ""  # contract.LABEL_*: where the model was found
    hyperparameters_label: str = ""  # contract.LABEL_*: where the hyperparameters were found ("" for none)
    hyperparameters: bytes | None = field(default=None, repr=False)  # what was (or would have been) injected
    sha256: str | None = None  # of the output, when a caller computed it (a local output; see step.report)
    mtime: int | None = None  # of the injected hyperparameters.json (None when preserved)
    mtime_source: str = ""  # how it was chosen: "SOURCE_DATE_EPOCH", "newest member", ... ("" when preserved)

    @property
    def output_member_count(self) -> int:
        """Members of the output: the input's, plus the injected hyperparameters.json."""
        return self.member_count + (1 if self.decision == contract.DECISION_INJECTED else 0)

    def summary(self) -> dict:
        """JSON-able summary (for --result-json and component metadata). ``member_count`` is the output's (the
        input's plus the injected file), the count the report shows; ``sha256`` is the output's when a caller
        computed it (a local output), else None."""
        return {
            "decision": self.decision,
            "output": self.output,
            "output_size": self.output_size,
            "sha256": self.sha256,
            "member_count": self.output_member_count,
            "method": self.method,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "model": self.model_location,
            "hyperparameters": self.hyperparameters_location,
            "input_size": self.input_size,
            "uncompressed_size": self.uncompressed_size,
            "kept_prefix": self.kept_prefix,
            "bytes_read": self.bytes_read,
            "bytes_copied": self.bytes_copied,
            "bytes_written": self.bytes_written,
            "scanner": self.scanner,
            "publish_seconds": round(self.publish_seconds, 3),
            "mtime": self.mtime,
            "mtime_source": self.mtime_source,
            "dummy_training_version": __version__,
        }


def utc_text(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class Progress:
    """Progress of a long repack. On a terminal, a tqdm bar (size, rate, ETA, fitted to the terminal's width);
    in a pod's or a job's log, where a redrawn bar is noise, a log line every ``interval`` seconds."""

    def __init__(self, interval: float = PROGRESS_INTERVAL_SECONDS, stream=None) -> None:  # noqa: ANN001
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.start = time.monotonic()
        self.last = self.start
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=total, file=self.stream, unit="B", unit_scale=True, unit_divisor=1000,
                                dynamic_ncols=True, mininterval=0.2, leave=True)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        pct = 100.0 * done / total if total else 100.0
        log.info("progress: %5.1f%% %s of %s at %s/s", pct, human_bytes(done), human_bytes(total), human_bytes(rate))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _log_members(result) -> None:  # noqa: ANN001 - engine.EngineResult
    shown = result.members[:LISTED_MEMBERS]
    log.info("archive members (%d):", result.member_count)
    for m in shown:
        log.info("  %12s  %-8s %s", human_bytes(m.size), m.type, escape_controls(m.display_name))
    if result.member_count > len(shown):
        log.info("  ... and %d more members (listing summarised)", result.member_count - len(shown))


def _publish(sink: Sink, source: ByteSource, decision: str) -> str:
    metadata = {
        contract.META_DECISION: decision,
        contract.META_SOURCE_URI: source.location,
        contract.META_VERSION: __version__,
    }
    etag = source.provenance().get("etag")
    if etag:
        metadata[contract.META_SOURCE_ETAG] = etag.strip('"')
    return sink.commit(metadata)


def run_repack(
    model: str | None = None,
    hyperparameters: str | None = None,
    hyperparameters_json: str | None = None,
    output_dir: str | None = None,
    output_uri: str | None = None,
    endpoint_url: str | None = None,
    *,
    output_path: str | None = None,
    mtime: float | None = None,
    progress: bool = True,
    fsync: bool | None = None,
) -> RepackResult:
    """Repack ``model`` so it carries a root hyperparameters.json; see the module docstring and the README.

    ``output_path`` names the output file itself (a KFP ``Output[Model]``'s path), instead of
    ``<output_dir>/model.tar.gz``."""
    from dummy_training.engine.archive import repack_archive, source_date_epoch

    started = time.monotonic()
    if mtime is None:
        source_date_epoch()  # a bad SOURCE_DATE_EPOCH fails here, before any input is opened
    model_res = resolve_model(model)
    log.info("model: %s %s", model_res.label, model_res.location)
    if output_path is None and not output_dir and not output_uri and not contract.inside_job():
        # the default output is the job's output directory: on a workstation it would create /opt/ml/...
        raise InvalidInputError(
            f"no {contract.OUTPUT_DIR.flag} given and this is no job (none of {contract.opt_ml_root()}/processing/"
            f"..., input/data/..., code exists): pass {contract.OUTPUT_DIR.flag} DIR (or {contract.OUTPUT_URI.flag} "
            "s3://...) for the repacked model.tar.gz")
    hp = resolve_hyperparameters(hyperparameters, hyperparameters_json, endpoint_url)
    if hp is None:
        log.info("hyperparameters: none given or found (fine if the archive carries its own)")
    else:
        log.info("hyperparameters: %s %s (%d bytes)", hp.label, hp.location, len(hp.data))
    target = output_path or resolve_output(output_dir, output_uri)
    if same_location(target, model_res.location):
        raise InvalidInputError(f"the output {target} is the input model: choose another output location")
    log.info("output: %s", target)

    source = open_source(model_res.location, endpoint_url=endpoint_url)
    try:
        log.info("input size: %s", human_bytes(source.size))
        sink = open_sink(target, endpoint_url=endpoint_url, source=source,
                         durable=contract.fsync_requested() if fsync is None else fsync)
        reporter = None
        try:
            reporter = Progress() if progress else None
            try:
                result = repack_archive(source, sink, hp.data if hp else None, progress=reporter, mtime=mtime)
            except InputNotFoundError as exc:
                if hp is not None:
                    raise
                raise InputNotFoundError(
                    f"{exc}; hyperparameters were searched at: {hyperparameters_search_description()}"
                ) from None
            finally:
                if reporter:
                    reporter.close()
            publish_started = time.monotonic()
            final = _publish(sink, source, result.decision)
            publish_seconds = time.monotonic() - publish_started
        except BaseException:
            sink.abort()
            raise
    finally:
        source.close()

    _log_members(result)
    ratio = result.uncompressed_size / result.input_size if result.input_size else 0.0
    log.info("total: %s uncompressed, %s compressed (ratio %.2f); scanned with %s",
             human_bytes(result.uncompressed_size), human_bytes(result.input_size), ratio, result.scanner)
    if result.decision == contract.DECISION_PRESERVED:
        log.info("decision: the archive has a root hyperparameters.json: preserved; output is the input byte for byte")
        if hp is not None:
            log.warning("the given hyperparameters (%s) were ignored: the archive's own hyperparameters.json wins",
                        hp.location)
    else:
        log.info("decision: injected hyperparameters.json at the archive root (method %s; %s of the input kept "
                 "verbatim; its mtime %s, from: %s)", result.method, human_bytes(result.kept_prefix),
                 utc_text(result.mtime), result.mtime_source)
    stats = sink.stats()
    elapsed = time.monotonic() - started
    bytes_read = int(getattr(source, "bytes_read", result.input_size))
    log.info("wrote %s (%s) in %.2f s (%s/s; publishing took %.2f s); read %s, copied %s (copy_file_range / "
             "server-side), written %s", final, human_bytes(result.output_size), elapsed,
             human_bytes(result.input_size / max(elapsed, 1e-9)), publish_seconds, human_bytes(bytes_read),
             human_bytes(stats.get("bytes_copied", 0)), human_bytes(stats.get("bytes_written", 0)))
    return RepackResult(
        decision=result.decision,
        output=final,
        output_size=result.output_size,
        member_count=result.member_count,
        members=result.members,
        method=result.method,
        elapsed_seconds=elapsed,
        model_location=model_res.location,
        hyperparameters_location=hp.location if hp else None,
        input_size=result.input_size,
        uncompressed_size=result.uncompressed_size,
        kept_prefix=result.kept_prefix,
        bytes_read=bytes_read,
        bytes_copied=stats.get("bytes_copied", 0),
        bytes_written=stats.get("bytes_written", 0),
        scanner=result.scanner,
        publish_seconds=publish_seconds,
        model_label=model_res.label,
        hyperparameters_label=hp.label if hp else "",
        hyperparameters=hp.data if hp else None,
        mtime=result.mtime,
        mtime_source=result.mtime_source,
    )
