"""The contract: every container path, channel name, input/output name and default in one place.

The CLI, the KFP components, the SageMaker CreateProcessingJob request and the ACK ProcessingJob manifest are
all built from this module; tests check that they agree with it. Nothing else in the package spells a
container path or a parameter name.

Container paths can be re-rooted for tests (and for running the contract layout outside a container) with the
environment variable ``DUMMY_TRAINING_OPT_ML_ROOT`` (default ``/opt/ml``) and the working directory used for the
last SOURCE fallback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------------------------- names
MODEL_FILENAME = "model.tar.gz"
HYPERPARAMETERS_FILENAME = "hyperparameters.json"
#: Names that count as "the archive already has a root hyperparameters.json".
ROOT_HYPERPARAMETERS_NAMES = (HYPERPARAMETERS_FILENAME, "./" + HYPERPARAMETERS_FILENAME)

#: SageMaker training-style input channels (``/opt/ml/input/data/<channel>/``).
CHANNEL_MODEL = "model_artifacts_input"
CHANNEL_HYPERPARAMETERS = "hyperparameters_s3_uri"

#: ProcessingInput / ProcessingOutput names of the SageMaker processing job.
PROCESSING_INPUT_MODEL = "model"
PROCESSING_INPUT_HYPERPARAMETERS = "config"
PROCESSING_OUTPUT_MODEL = "model"
#: The job's own report channel: the repack's Markdown report and its JSON result, uploaded next to (never into)
#: the model's output prefix, where the launchers read them back (``<base>/<job>/report/``).
PROCESSING_OUTPUT_REPORT = "report"
REPORT_FILENAME = "report.md"
RESULT_FILENAME = "result.json"
#: Flags of ``dummy-training repack`` that write the report and the result (a path or an s3:// URI).
REPORT_FLAG = "--report"
RESULT_JSON_FLAG = "--result-json"

OPT_ML_ROOT_ENV = "DUMMY_TRAINING_OPT_ML_ROOT"
DEFAULT_OPT_ML_ROOT = "/opt/ml"

#: ``1`` makes a local output durable against power loss (fsync before and after the rename), like ``--fsync``.
FSYNC_ENV = "DUMMY_TRAINING_FSYNC"

#: The distribution (what ``pip install`` names) and the optional packages its extras bring: a sub-command that
#: needs one of these modules on an install without the extra ends with one line naming the extra (exit 3).
DISTRIBUTION = "kfp-sagemaker-dummy-training"
EXTRA_MODULES = {
    "kfp": "kfp",  # compile, demo, the components (kfp and kfp-kubernetes)
    "kubernetes": "ack",  # ack run
    "yaml": "ack",  # ack manifest (PyYAML; kfp brings it too)
    "sagemaker": "sagemaker",  # the SageMaker Pipelines step (the SDK)
}


def extra_for_module(module: str) -> str | None:
    """The extra that installs ``module`` (``kfp.dsl`` -> ``kfp``), or None when no extra does."""
    return EXTRA_MODULES.get(module.split(".")[0])


def install_extra_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


#: The console script and the sub-command the remote job runs.
CONSOLE_SCRIPT = "dummy-training"
REPACK_COMMAND = "repack"
CONTAINER_ENTRYPOINT = (CONSOLE_SCRIPT, REPACK_COMMAND)

# ------------------------------------------------------------------------------------ job defaults
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_INSTANCE_COUNT = 1
DEFAULT_VOLUME_SIZE_GB = 30
DEFAULT_MAX_RUNTIME_SECONDS = 1200
PROCESSING_JOB_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
ACK_API_VERSION = "sagemaker.services.k8s.aws/v1alpha1"
ACK_KIND = "ProcessingJob"
ACK_GROUP = "sagemaker.services.k8s.aws"
ACK_VERSION = "v1alpha1"
ACK_PLURAL = "processingjobs"

#: Metadata keys written on the output (S3 object metadata, KFP artifact metadata).
META_DECISION = "dummy-training-decision"
META_SOURCE_URI = "dummy-training-source-uri"
META_SOURCE_ETAG = "dummy-training-source-etag"
META_VERSION = "dummy-training-version"

DECISION_INJECTED = "injected"
DECISION_PRESERVED = "preserved"


def fsync_requested() -> bool:
    return os.environ.get(FSYNC_ENV, "").strip().lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------------------- paths
def opt_ml_root() -> Path:
    return Path(os.environ.get(OPT_ML_ROOT_ENV, DEFAULT_OPT_ML_ROOT))


def _under(rel: str) -> Path:
    return opt_ml_root() / rel


def processing_model_dir() -> Path:
    return _under("processing/input/model")


def processing_config_dir() -> Path:
    return _under("processing/input/config")


def processing_output_dir() -> Path:
    return _under("processing/output/model")


def processing_report_dir() -> Path:
    return _under("processing/output/report")


def channel_dir(channel: str) -> Path:
    return _under(f"input/data/{channel}")


def code_dir() -> Path:
    return _under("code")


#: Container paths as the remote job sees them (never re-rooted: these go into job requests).
CONTAINER_MODEL_DIR = f"{DEFAULT_OPT_ML_ROOT}/processing/input/model"
CONTAINER_CONFIG_DIR = f"{DEFAULT_OPT_ML_ROOT}/processing/input/config"
CONTAINER_OUTPUT_DIR = f"{DEFAULT_OPT_ML_ROOT}/processing/output/model"
CONTAINER_REPORT_DIR = f"{DEFAULT_OPT_ML_ROOT}/processing/output/report"

# labels used in the logs, as the design documents name them
LABEL_CHANNEL = "[Input Channel]"
LABEL_PROCESSING = "[Processing Input]"
LABEL_SOURCE = "[SOURCE Fallback]"
LABEL_FLAG = "[Argument]"


@dataclass(frozen=True)
class Candidate:
    """One place an input may be found, in search order."""

    path: Path
    label: str


def model_candidates() -> list[Candidate]:
    code = code_dir()
    return [
        Candidate(channel_dir(CHANNEL_MODEL) / MODEL_FILENAME, LABEL_CHANNEL),
        Candidate(processing_model_dir() / MODEL_FILENAME, LABEL_PROCESSING),
        Candidate(code / "models" / MODEL_FILENAME, LABEL_SOURCE),
        Candidate(code / MODEL_FILENAME, LABEL_SOURCE),
        Candidate(Path.cwd() / MODEL_FILENAME, LABEL_SOURCE),
    ]


def hyperparameters_candidates() -> list[Candidate]:
    code = code_dir()
    return [
        Candidate(channel_dir(CHANNEL_HYPERPARAMETERS) / HYPERPARAMETERS_FILENAME, LABEL_CHANNEL),
        Candidate(processing_config_dir() / HYPERPARAMETERS_FILENAME, LABEL_PROCESSING),
        Candidate(code / "hyperparams" / HYPERPARAMETERS_FILENAME, LABEL_SOURCE),
        Candidate(code / HYPERPARAMETERS_FILENAME, LABEL_SOURCE),
    ]


def default_output_dir() -> Path:
    return processing_output_dir()


def job_directories() -> list[Path]:
    """Where a job's inputs or output are laid out: the processing input and output directories, the input
    channels and the code directory. None of them existing means this is no job (a workstation)."""
    return [processing_model_dir(), processing_config_dir(), processing_output_dir(),
            channel_dir(CHANNEL_MODEL), channel_dir(CHANNEL_HYPERPARAMETERS), code_dir()]


def inside_job() -> bool:
    """True when a job's layout is here (see ``job_directories``): only then is the default output directory
    (``default_output_dir``) used; elsewhere the output location must be given."""
    return any(d.is_dir() for d in job_directories())


# ------------------------------------------------------------------------------ parameter names
@dataclass(frozen=True)
class Param:
    """A step parameter: one name for the CLI flag, the component input and the launcher argument."""

    name: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


MODEL = Param("model", "pretrained model.tar.gz: a file, a directory holding one, or an s3:// URI")
HYPERPARAMETERS = Param(
    "hyperparameters", "hyperparameters.json to inject when the archive has none: file, directory or s3:// URI"
)
HYPERPARAMETERS_JSON = Param("hyperparameters_json", "hyperparameters to inject, as an inline JSON object")
OUTPUT_DIR = Param("output_dir", "directory to write model.tar.gz into")
OUTPUT_URI = Param("output_uri", "s3:// prefix or key to write model.tar.gz to (S3 to S3 repack)")
ENDPOINT_URL = Param("endpoint_url", "S3-compatible endpoint URL (e.g. MinIO); default AWS_ENDPOINT_URL_S3")

#: Parameters of the repack step itself, shared by the CLI and every component.
REPACK_INPUTS = (MODEL, HYPERPARAMETERS, HYPERPARAMETERS_JSON)

#: Output names of every component.
OUTPUT_MODEL = "output_model"  # not "model": a KFP Python component cannot reuse its input's name
OUTPUT_MODEL_S3_URI = "model_s3_uri"
OUTPUT_JOB_ARN = "job_arn"
#: The Markdown report a person reads in the KFP UI (``system.Markdown``): decision, inputs, members, bytes, job.
OUTPUT_REPORT = "report"
#: Scalar figures the KFP UI compares across runs (``system.Metrics``): sizes, members, seconds, bytes.
OUTPUT_METRICS = "metrics"
