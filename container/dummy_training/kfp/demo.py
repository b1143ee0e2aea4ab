"""`dummy-training demo`: run the compiled pipeline on this machine with kfp.local (no cluster, no AWS account).

Makes a small example model (no root hyperparameters.json, or with one for ``--preserve``) and example
hyperparameters, runs the COMPILED pipeline YAML (``dummy_training_pipeline.yaml``, shipped in the package)
with ``kfp.local.SubprocessRunner(use_venv=False)`` on backend ``kubernetes`` (the native branch: import,
repack, check), then prints where the output is, the decision taken and the output's members. The full
kfp.local log goes to ``<output-dir>/demo-<time>.log`` (``--show-log`` streams it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import os
import re
import sys
import tarfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dummy_training import contract
from dummy_training.console import EXIT_CODE_FILE_ENV
from dummy_training.errors import (
    EXIT_OK,
    EXIT_RUNTIME,
    DummyTrainingError,
    InputNotFoundError,
    InvalidInputError,
    MissingExtraError,
    RuntimeIOError,
)
from dummy_training.hyperparameters import parse_hyperparameters
from dummy_training.step.repack import human_bytes

PIPELINE_YAML = "dummy_training_pipeline.yaml"
DEFAULT_OUTPUT_DIR = "local_outputs"
LISTED_MEMBERS = 50
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ECHO = re.compile(r"finished with status|dummy-training: error")
_EXCEPTION = re.compile(r"^[A-Za-z_.]*(Error|Exception|Exit)\b.*: ")


def packaged_pipeline(name: str = PIPELINE_YAML) -> Path:
    """The compiled pipeline shipped in the package (written there by `dummy-training compile`)."""
    path = Path(str(importlib.resources.files("dummy_training.kfp") / "data" / "pipelines" / name))
    if not path.is_file():
        raise InputNotFoundError(f"compiled pipeline {name} not found in the package at {path}: "
                                 "run `dummy-training compile` in the repository")
    return path


class PipelineRunError(DummyTrainingError):
    """A local pipeline run failed; ``exit_code`` is the failing task's own (the repack's codes: 1 not found,
    2 invalid input, 3 runtime), or 3 when no task said (kfp.local could not run it)."""

    def __init__(self, message: str, exit_code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Tee(IO[str]):
    """stdout replacement while kfp.local runs: everything to the log, task status lines (or all) echoed."""

    def __init__(self, log: IO[str], echo: IO[str], echo_all: bool) -> None:
        self.log, self.echo, self.echo_all = log, echo, echo_all
        self.partial = ""
        self.errors: list[str] = []  # the engine's one-line messages
        self.exceptions: list[str] = []  # last lines of tracebacks (bugs, or kfp failing to run a task)

    def write(self, s: str) -> int:
        self.log.write(s)
        if self.echo_all:
            self.echo.write(s)
        self.partial += s
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            plain = _ANSI.sub("", line).strip()
            if "dummy-training: error:" in plain:
                self.errors.append(plain[plain.index("dummy-training: error:"):])
            elif _EXCEPTION.match(plain):
                self.exceptions.append(plain)
            if not self.echo_all and _ECHO.search(plain):
                self.echo.write("  " + plain + "\n")
        return len(s)

    def flush(self) -> None:
        self.log.flush()
        self.echo.flush()

    def isatty(self) -> bool:
        return False


@dataclass
class DemoResult:
    """What the demo found after the run (also used by the tests)."""

    run_dir: Path
    output: Path
    metadata: dict[str, Any]
    members: list[tuple[str, int, str]] = field(default_factory=list)  # (name, size, type)
    member_count: int = 0
    checked_hyperparameters: dict[str, Any] | None = None
    log_path: Path | None = None
    elapsed_seconds: float = 0.0
    report_path: Path | None = None  # the task's Markdown report (Output[Markdown])
    metrics: dict[str, float] = field(default_factory=dict)  # the task's Output[Metrics]


def _executor_output(task_dir: Path) -> dict[str, Any]:
    path = task_dir / "executor_output.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def list_members(archive: Path, limit: int = LISTED_MEMBERS) -> tuple[list[tuple[str, int, str]], int]:
    """The first ``limit`` members (name, size, type) and the member count."""
    shown: list[tuple[str, int, str]] = []
    count = 0
    with tarfile.open(archive, "r|gz") as tar:
        for m in tar:
            count += 1
            if len(shown) < limit:
                shown.append((m.name, m.size, "dir" if m.isdir() else "file" if m.isfile() else "other"))
    return shown, count


def collect_result(run_dir: Path) -> DemoResult:
    """Find the repack output (``<task>/output_model``, the model.tar.gz itself), its metadata and the check's
    answer."""
    outputs = sorted(p for p in run_dir.glob("**/output_model") if p.is_file())
    if not outputs:
        raise PipelineRunError(f"the run finished but no output model was found under {run_dir}")
    output = outputs[0]
    task_dir = output.parent
    executor_output = _executor_output(task_dir).get("artifacts", {})
    artifacts = executor_output.get("output_model", {}).get("artifacts", [{}])
    metadata = dict(artifacts[0].get("metadata", {})) if artifacts else {}
    metrics = (executor_output.get(contract.OUTPUT_METRICS, {}).get("artifacts") or [{}])[0].get("metadata", {})
    report_path = task_dir / contract.OUTPUT_REPORT
    checked = None
    for check_dir in sorted(task_dir.parent.glob("check-model-op*")):
        value = _executor_output(check_dir).get("parameterValues", {}).get("Output")
        if value:
            checked = json.loads(value)
    members, count = list_members(output)
    return DemoResult(run_dir=run_dir, output=output, metadata=metadata, members=members, member_count=count,
                      checked_hyperparameters=checked, report_path=report_path if report_path.is_file() else None,
                      metrics=dict(metrics))


def _drop_key(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return {k: _drop_key(v, key) for k, v in node.items() if k != key}
    if isinstance(node, list):
        return [_drop_key(v, key) for v in node]
    return node


def _yaml_documents(yaml_text: str) -> list[Any]:
    """The YAML documents of ``yaml_text``, read with libyaml's C loader where PyYAML has it (a compiled
    pipeline is 124 KB: the pure-Python loader takes most of a second over it)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(yaml_text, Loader=loader) if doc is not None]


def _local_documents(yaml_text: str) -> list[Any]:
    return [_drop_key(doc, "retryPolicy") for doc in _yaml_documents(yaml_text)]


def local_pipeline_text(yaml_text: str) -> str:
    """The compiled pipeline without its retry policies, for a local run.

    kfp.local honours ``retryPolicy`` with its backoff (30 s, then 60 s): a deterministic failure such as a
    missing hyperparameters.json would take 90 s to report. Retries are for a cluster's transient failures;
    locally nothing else changes. (``load_local_pipeline`` gives the loaded component without writing this text.)
    """
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump_all(_local_documents(yaml_text), Dumper=dumper, sort_keys=False)


@dataclass(frozen=True)
class LocalPipeline:
    """A compiled pipeline loaded once for local runs: the kfp component and its pipeline spec as a dict."""

    component: Any  # kfp.dsl.yaml_component.YamlComponent
    spec: dict[str, Any]  # the first YAML document (PipelineSpec), retry policies dropped


_LOADED: dict[tuple[str, int, int], LocalPipeline] = {}


def load_local_pipeline(pipeline_yaml: Path) -> LocalPipeline:
    """``pipeline_yaml`` as a kfp component without its retry policies (see ``local_pipeline_text``), parsed once
    (with the C loader where present) and kept for the file's later runs in this process.

    kfp's own ``load_component_from_text`` parses the text with the pure-Python loader, and its
    ``pipeline_spec`` property parses it again at each access; here the parsed documents become the component
    directly (``ComponentSpec.from_ir_dicts``, what kfp does after parsing) and ``pipeline_spec`` is built once."""
    from google.protobuf import json_format
    from kfp.dsl import structures, yaml_component
    from kfp.pipeline_spec import pipeline_spec_pb2

    stat = pipeline_yaml.stat()
    key = (str(pipeline_yaml.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _LOADED:
        return _LOADED[key]
    docs = _local_documents(pipeline_yaml.read_text())
    if not docs or not all(isinstance(d, dict) for d in docs) or len(docs) > 2:
        raise ValueError(f"expected one or two YAML mappings (pipeline spec, platform spec), got {len(docs)}")
    spec, platform = docs[0], (docs[1] if len(docs) > 1 else {})
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)

    class _Loaded(yaml_component.YamlComponent):
        @property
        def pipeline_spec(self) -> pipeline_spec_pb2.PipelineSpec:  # built once, not re-parsed at each access
            return parsed

    component = _Loaded(component_spec=structures.ComponentSpec.from_ir_dicts(spec, platform), component_yaml="")
    _LOADED.clear()  # one pipeline at a time is all the demo and the tests need
    _LOADED[key] = LocalPipeline(component, spec)
    return _LOADED[key]


def run_pipeline(
    pipeline_yaml: Path,
    output_dir: Path,
    arguments: dict[str, str],
    *,
    echo: IO[str] | None = None,
    show_log: bool = False,
) -> DemoResult:
    """Run a compiled pipeline with kfp.local's SubprocessRunner; return what it produced.

    Raises ``PipelineRunError`` with the engine's one-line message and the failing task's exit code.
    """
    try:
        from kfp import local
    except ImportError:
        raise MissingExtraError("dummy-training demo", "kfp") from None

    echo = echo or sys.stdout
    output_dir.mkdir(parents=True, exist_ok=True)
    pipeline_root = output_dir / "pipeline_root"
    pipeline_root.mkdir(exist_ok=True)
    before = set(pipeline_root.iterdir())
    log_path = output_dir / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.log"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    pipeline = load_local_pipeline(pipeline_yaml).component
    started = time.monotonic()
    failure: Exception | None = None
    codes_path = output_dir / f".exit-codes-{os.getpid()}"
    codes_path.unlink(missing_ok=True)
    saved_env = os.environ.get(EXIT_CODE_FILE_ENV)
    os.environ[EXIT_CODE_FILE_ENV] = str(codes_path)  # the tasks (subprocesses) append their exit codes there
    with open(log_path, "w") as log_fh, warnings.catch_warnings(), _restore_env(EXIT_CODE_FILE_ENV, saved_env):
        # our image name has no "python" in it; kfp.local warns about that even though we run in-process
        warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
        # resources, display names, k8s settings: meaningful on a cluster, no-ops here (and said so in the log)
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        tee = _Tee(log_fh, echo, show_log)
        with contextlib.redirect_stdout(tee):
            try:
                pipeline(**arguments)
            except RuntimeError as exc:  # kfp.local: "Pipeline ... finished with status FAILURE"
                failure = exc
        tee.flush()
    elapsed = time.monotonic() - started
    if failure is not None:
        reason = (tee.errors or tee.exceptions or [_ANSI.sub("", str(failure)).strip().splitlines()[0]])[0]
        reason = reason.removeprefix("dummy-training: error: ")
        codes = codes_path.read_text().split() if codes_path.is_file() else []
        codes_path.unlink(missing_ok=True)
        raise PipelineRunError(f"the pipeline run failed: {reason} (full log: {log_path})",
                               int(codes[0]) if codes and codes[0].isdigit() else EXIT_RUNTIME)
    codes_path.unlink(missing_ok=True)
    new_runs = sorted(set(pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    if not new_runs:
        raise PipelineRunError(f"the run left nothing under {pipeline_root} (full log: {log_path})")
    result = collect_result(new_runs[-1])
    result.log_path, result.elapsed_seconds = log_path, elapsed
    return result


@contextlib.contextmanager
def _restore_env(name: str, value: str | None) -> Any:
    try:
        yield
    finally:
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


#: The demo's inputs, by the pipeline parameter names it knows.
MODEL_PARAMETER, MODELS_PARAMETER = "model_uri", "model_uris"


def pipeline_arguments(pipeline_yaml: Path, model: str, hyperparameters: str, hyperparameters_json: str,
                       ) -> dict[str, Any]:
    """The arguments the demo gives ``pipeline_yaml``: its model parameter (``model_uri``, or ``model_uris`` as a
    one-model list), the hyperparameters parameters it declares, ``backend`` kubernetes if it has one. A file
    that is no compiled pipeline, or a pipeline needing inputs the demo cannot give, is ``InvalidInputError``
    (one line, exit 2), before anything runs."""
    try:
        import kfp  # noqa: F401
    except ImportError:
        raise MissingExtraError("dummy-training demo", "kfp") from None

    try:
        loaded = load_local_pipeline(pipeline_yaml)
        inputs = dict(loaded.component.component_spec.inputs or {})
    except OSError as exc:
        raise RuntimeIOError(f"cannot read {pipeline_yaml}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - yaml, kfp: whatever the file is, it is not a pipeline we can run
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"--pipeline {pipeline_yaml}: not a compiled KFP pipeline ({first})") from None
    if "dag" not in (loaded.spec.get("root") or {}):
        raise InvalidInputError(f"--pipeline {pipeline_yaml}: a component, not a compiled pipeline")
    args: dict[str, Any] = {}
    if MODEL_PARAMETER in inputs:
        args[MODEL_PARAMETER] = model
    elif MODELS_PARAMETER in inputs:
        args[MODELS_PARAMETER] = [model]
    else:
        raise InvalidInputError(f"--pipeline {pipeline_yaml}: it has no {MODEL_PARAMETER} or {MODELS_PARAMETER} "
                                f"parameter to give the model to (its parameters: {', '.join(inputs) or 'none'})")
    for name, value in (("hyperparameters_uri", hyperparameters), ("hyperparameters_json", hyperparameters_json),
                        ("backend", "kubernetes")):
        if name in inputs:
            args[name] = value
    missing = [n for n, spec in inputs.items() if n not in args and not spec.optional and spec.default is None]
    if missing:
        raise InvalidInputError(f"--pipeline {pipeline_yaml}: it needs {', '.join(missing)}, which the demo cannot "
                                "give (it gives the model, the hyperparameters and backend=kubernetes)")
    return args


def report(result: DemoResult, model: str, hyperparameters: str, hyperparameters_json: str, out: IO[str]) -> None:
    w = out.write
    meta = result.metadata
    w(f"\nThe pipeline ran locally (kfp.local, no cluster) in {result.elapsed_seconds:.1f} s.\n")
    w(f"  model:            {model}\n")
    ignored = " (ignored: the archive's own wins)" if meta.get("decision") == contract.DECISION_PRESERVED else ""
    if hyperparameters:
        w(f"  hyperparameters:  {hyperparameters}{ignored}\n")
    if hyperparameters_json:
        w(f"  hyperparameters:  {hyperparameters_json} (inline){ignored}\n")
    w(f"  decision:         {meta.get('decision', '?')} (method {meta.get('method', '?')})\n")
    w(f"  output:           {result.output}\n")
    w(f"  size, sha256:     {human_bytes(result.output.stat().st_size)}, {meta.get('sha256', '?')}\n")
    w(f"  members ({result.member_count}):\n")
    for name, size, kind in result.members:
        w(f"    {human_bytes(size) if kind == 'file' else '':>10}  {name}{'/' if kind == 'dir' else ''}\n")
    if result.member_count > len(result.members):
        w(f"    ... and {result.member_count - len(result.members)} more\n")
    if result.checked_hyperparameters is not None:
        w(f"  check step read {contract.HYPERPARAMETERS_FILENAME}: "
          f"{json.dumps(result.checked_hyperparameters, sort_keys=True)}\n")
    if result.report_path:
        w(f"  report:           {result.report_path} (the task's Markdown report, as the KFP UI shows it)\n")
    w(f"  full log:         {result.log_path}\n")


# ------------------------------------------------------------------------------------------------ CLI
def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the pipeline locally with kfp.local on an example model (no cluster, no AWS)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(contract.MODEL.flag, dest=contract.MODEL.name, metavar="PATH",
                   help="your model.tar.gz (default: a generated example model without hyperparameters.json)")
    p.add_argument(contract.HYPERPARAMETERS.flag, dest=contract.HYPERPARAMETERS.name, metavar="PATH",
                   help="hyperparameters.json to inject (default with the example model: example hyperparameters)")
    p.add_argument(contract.HYPERPARAMETERS_JSON.flag, dest=contract.HYPERPARAMETERS_JSON.name, metavar="JSON",
                   help=contract.HYPERPARAMETERS_JSON.help)
    p.add_argument(contract.OUTPUT_DIR.flag, dest=contract.OUTPUT_DIR.name, metavar="DIR", default=DEFAULT_OUTPUT_DIR,
                   help=f"where the example inputs, the pipeline root and the log go (default ./{DEFAULT_OUTPUT_DIR})")
    p.add_argument("--preserve", action="store_true",
                   help="use an example model that already has hyperparameters.json (the step keeps it)")
    p.add_argument("--pipeline", type=Path, metavar="YAML",
                   help=f"compiled pipeline to run (default: the packaged {PIPELINE_YAML})")
    p.add_argument("--show-log", action="store_true", help="stream the full kfp.local log, not only task statuses")
    p.set_defaults(func=run, needs=("kfp",))


#: The first kfp whose kfp.local runs a pipeline's ``dsl.If``/``Elif``/``Else`` branches: 2.15 refuses any
#: condition, 2.16 runs every task whatever its condition (the wrong branch, e.g. the S3-direct repack), and both
#: need every artifact input of a task given. The components alone run on any kfp the ``[kfp]`` extra allows.
KFP_LOCAL_PIPELINES = (2, 17)


def require_kfp_local_pipelines() -> None:
    """Refuse (one line, exit 3) a kfp whose kfp.local cannot run our pipelines, before anything is written."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("kfp")
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtraError("dummy-training demo", "kfp") from None
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if parts < KFP_LOCAL_PIPELINES:
        need = ".".join(map(str, KFP_LOCAL_PIPELINES))
        raise RuntimeIOError(f"dummy-training demo runs the pipeline with kfp.local, which runs its dsl.If/Elif "
                             f"branches from kfp {need} on; this is kfp {version}: pip install 'kfp>={need},<3' "
                             "(the components themselves run on kfp 2.15 and later)")


def _existing(path: str, what: str) -> Path:
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise InputNotFoundError(f"{what} not found: {path}")
    return p


def run(args: argparse.Namespace) -> int:
    from dummy_training.kfp.example_model import write_example_hyperparameters, write_example_model

    require_kfp_local_pipelines()
    output_dir = Path(getattr(args, contract.OUTPUT_DIR.name)).expanduser().resolve()
    model_arg = getattr(args, contract.MODEL.name)
    hp_arg = getattr(args, contract.HYPERPARAMETERS.name)
    hp_json = getattr(args, contract.HYPERPARAMETERS_JSON.name) or ""
    if model_arg and args.preserve:
        raise InvalidInputError("--preserve selects the example model; leave it out when you give --model")
    if hp_json:
        parse_hyperparameters(hp_json.encode("utf-8"), contract.HYPERPARAMETERS_JSON.flag)
    pipeline_yaml = _existing(str(args.pipeline), "pipeline YAML") if args.pipeline else packaged_pipeline()
    example_dir = output_dir / "example"
    if model_arg:
        model = _existing(model_arg, "model")
        model_shown = str(model)
    else:
        model = example_dir / ("model-with-hyperparameters" if args.preserve else "model") / contract.MODEL_FILENAME
        model_shown = f"{model} (example model, {'with' if args.preserve else 'without'} hyperparameters.json)"
    example_hp = not model_arg and not hp_arg and not hp_json
    if example_hp:
        hp_arg = str(example_dir / contract.HYPERPARAMETERS_FILENAME)
    hyperparameters = hp_arg if example_hp else str(_existing(hp_arg, "hyperparameters")) if hp_arg else ""
    # the first line once the arguments are judged, before kfp is imported and the pipeline loaded (seconds)
    # (written, not print()ed: kfp.local swaps builtins.print for an indenting one while a task runs, in any thread)
    sys.stdout.write(f"Running {pipeline_yaml.name} with kfp.local (backend kubernetes: import, repack, check) ...\n")
    sys.stdout.flush()

    arguments = pipeline_arguments(pipeline_yaml, str(model), hyperparameters, hp_json)  # nothing written before
    if not model_arg:
        write_example_model(model, with_hyperparameters=args.preserve)
    if example_hp:
        write_example_hyperparameters(Path(hyperparameters))
    result = run_pipeline(pipeline_yaml, output_dir, arguments, show_log=args.show_log)
    report(result, model_shown, hyperparameters, hp_json, sys.stdout)
    return EXIT_OK
