"""The remote job, described once: a ``ProcessingJobSpec`` and the SageMaker ``CreateProcessingJob`` request.

The SageMaker launcher sends ``build_create_processing_job_request(spec)`` as it is; the ACK launcher converts
the same request to ACK's field casing. Both are therefore the same job by construction, and every container
path and name in them comes from ``contract``.

Two modes:
- staged (default): the model (and hyperparameters) are ProcessingInputs that SageMaker downloads onto the
  instance volume at the contract paths; the output directory is uploaded at the end of the job.
- s3_direct: no ProcessingInputs/Outputs; the container repacks S3 to S3 with the job's role (streaming, no
  volume limit on the model size). Needs network access, so it excludes network isolation.

With ``report_s3_uri`` (the launchers always give one) the job also writes its own report and result, which the
launchers read back: staged, into a second ProcessingOutput (``report``, uploaded to ``report_s3_uri``); s3_direct,
straight to ``report_s3_uri`` (``--report s3://...``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from dummy_training import contract
from dummy_training.errors import InvalidInputError

JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
#: a SageMaker instance type: ``ml.<family>.<size>`` (ml.m5.large, ml.g4dn.xlarge, ml.p4d.24xlarge)
INSTANCE_TYPE_RE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
MAX_JOB_NAME = 63


def job_name(*parts: str, max_len: int = MAX_JOB_NAME) -> str:
    """A deterministic SageMaker job name from ``parts`` (same parts, same name: a retry re-attaches).

    Characters outside ``[A-Za-z0-9]`` become ``-``, runs of ``-`` collapse; when the result is too long it is
    cut and ended with 8 hex digits of a hash of the full name so distinct inputs stay distinct.
    """
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]+", "-", raw)).strip("-") or "dummy-training"
    if len(name) > max_len:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = name[: max_len - 9].rstrip("-") + "-" + digest
    if not JOB_NAME_RE.match(name):  # pragma: no cover - the construction above guarantees it
        raise InvalidInputError(f"cannot derive a valid job name from {raw!r}")
    return name


def validate_job_name(name: str) -> str:
    if not JOB_NAME_RE.match(name):
        raise InvalidInputError(
            f"invalid job name {name!r}: 1-63 letters, digits and hyphens, starting and ending alphanumeric"
        )
    return name


@dataclass(kw_only=True)
class JobSettings:
    """How a job runs: instances, limits, encryption, network, environment, tags, S3-direct mode. Shared by the
    launcher's ``LaunchConfig`` and the ``ProcessingJobSpec`` it builds."""

    instance_type: str = contract.DEFAULT_INSTANCE_TYPE
    instance_count: int = contract.DEFAULT_INSTANCE_COUNT
    volume_size_gb: int = contract.DEFAULT_VOLUME_SIZE_GB
    max_runtime_seconds: int = contract.DEFAULT_MAX_RUNTIME_SECONDS
    volume_kms_key_id: str | None = None
    output_kms_key_id: str | None = None
    subnets: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    enable_network_isolation: bool = False
    enable_inter_container_traffic_encryption: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    s3_direct: bool = False


@dataclass(kw_only=True)
class ProcessingJobSpec(JobSettings):
    """Everything that defines one remote run of the repack step."""

    job_name: str
    role_arn: str
    image_uri: str
    model_s3_uri: str
    output_s3_uri: str
    hyperparameters_s3_uri: str | None = None
    #: where the job writes its own report (``report.md``) and result (``result.json``): an S3 prefix next to the
    #: model's output prefix, never inside it; None: the job writes none (no report channel)
    report_s3_uri: str | None = None

    def validate(self) -> None:
        validate_job_name(self.job_name)
        if not ROLE_ARN_RE.match(self.role_arn):
            raise InvalidInputError(f"invalid role ARN {self.role_arn!r}: expected arn:aws:iam::<account>:role/<name>")
        for label, uri in (("model", self.model_s3_uri), ("output", self.output_s3_uri),
                           ("hyperparameters", self.hyperparameters_s3_uri), ("report", self.report_s3_uri)):
            if uri is not None and not uri.startswith("s3://"):
                raise InvalidInputError(f"{label} must be an s3:// URI for a remote job, got {uri!r}")
        if self.report_s3_uri is not None:
            report, output = self.report_s3_uri.rstrip("/") + "/", self.output_s3_uri.rstrip("/") + "/"
            if report.startswith(output):  # a consumer of the output prefix must find only model.tar.gz there
                raise InvalidInputError(f"the report prefix {self.report_s3_uri} must lie beside the model's output "
                                        f"prefix {self.output_s3_uri}, not inside it")
        if not INSTANCE_TYPE_RE.match(self.instance_type):
            raise InvalidInputError(f"invalid instance type {self.instance_type!r}: a SageMaker instance type starts "
                                    f"with ml. (e.g. {contract.DEFAULT_INSTANCE_TYPE})")
        if self.instance_count < 1:
            raise InvalidInputError("instance_count must be at least 1")
        if self.volume_size_gb < 1:
            raise InvalidInputError("volume_size_gb must be at least 1")
        if not 1 <= self.max_runtime_seconds <= 432000:
            raise InvalidInputError("max_runtime_seconds must be between 1 and 432000")
        if bool(self.subnets) != bool(self.security_group_ids):
            raise InvalidInputError("VPC config needs both subnets and security group ids")
        if self.s3_direct and self.enable_network_isolation:
            raise InvalidInputError("s3_direct mode reads and writes S3 from the container: "
                                    "it cannot run with network isolation")

    # -------------------------------------------------------------------------------- container side
    def container_arguments(self) -> list[str]:
        """Arguments after ``dummy-training repack`` inside the job's container."""
        if self.s3_direct:
            args = [contract.MODEL.flag, self.model_s3_uri, contract.OUTPUT_URI.flag, self.output_s3_uri]
            if self.hyperparameters_s3_uri:
                args += [contract.HYPERPARAMETERS.flag, self.hyperparameters_s3_uri]
        else:
            args = [contract.MODEL.flag, contract.CONTAINER_MODEL_DIR,
                    contract.OUTPUT_DIR.flag, contract.CONTAINER_OUTPUT_DIR]
            if self.hyperparameters_s3_uri:
                args += [contract.HYPERPARAMETERS.flag, contract.CONTAINER_CONFIG_DIR]
        if self.report_s3_uri:
            # staged: files in the report channel's directory, uploaded at the end of the job; s3_direct: the
            # container writes the objects itself
            base = self.report_s3_uri.rstrip("/") if self.s3_direct else contract.CONTAINER_REPORT_DIR
            args += [contract.REPORT_FLAG, f"{base}/{contract.REPORT_FILENAME}",
                     contract.RESULT_JSON_FLAG, f"{base}/{contract.RESULT_FILENAME}"]
        return args


def _s3_input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


def _s3_output(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "AppManaged": False,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def build_create_processing_job_request(spec: ProcessingJobSpec) -> dict[str, Any]:
    """The exact boto3 ``create_processing_job`` keyword arguments for ``spec``."""
    spec.validate()
    cluster: dict[str, Any] = {
        "InstanceCount": spec.instance_count,
        "InstanceType": spec.instance_type,
        "VolumeSizeInGB": spec.volume_size_gb,
    }
    if spec.volume_kms_key_id:
        cluster["VolumeKmsKeyId"] = spec.volume_kms_key_id
    request: dict[str, Any] = {
        "ProcessingJobName": spec.job_name,
        "RoleArn": spec.role_arn,
        "AppSpecification": {
            "ImageUri": spec.image_uri,
            "ContainerEntrypoint": list(contract.CONTAINER_ENTRYPOINT),
            "ContainerArguments": spec.container_arguments(),
        },
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
    }
    if not spec.s3_direct:
        inputs = [_s3_input(contract.PROCESSING_INPUT_MODEL, spec.model_s3_uri, contract.CONTAINER_MODEL_DIR)]
        if spec.hyperparameters_s3_uri:
            inputs.append(_s3_input(contract.PROCESSING_INPUT_HYPERPARAMETERS, spec.hyperparameters_s3_uri,
                                    contract.CONTAINER_CONFIG_DIR))
        request["ProcessingInputs"] = inputs
        outputs = [_s3_output(contract.PROCESSING_OUTPUT_MODEL, spec.output_s3_uri, contract.CONTAINER_OUTPUT_DIR)]
        if spec.report_s3_uri:
            outputs.append(_s3_output(contract.PROCESSING_OUTPUT_REPORT, spec.report_s3_uri,
                                      contract.CONTAINER_REPORT_DIR))
        output_config: dict[str, Any] = {"Outputs": outputs}
        if spec.output_kms_key_id:
            output_config["KmsKeyId"] = spec.output_kms_key_id
        request["ProcessingOutputConfig"] = output_config
    network: dict[str, Any] = {}
    if spec.enable_network_isolation:
        network["EnableNetworkIsolation"] = True
    if spec.enable_inter_container_traffic_encryption:
        network["EnableInterContainerTrafficEncryption"] = True
    if spec.subnets:
        network["VpcConfig"] = {"SecurityGroupIds": list(spec.security_group_ids), "Subnets": list(spec.subnets)}
    if network:
        request["NetworkConfig"] = network
    if spec.environment:
        request["Environment"] = dict(spec.environment)
    if spec.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in spec.tags.items()]
    return request


def output_model_uri(spec: ProcessingJobSpec) -> str:
    """Where the repacked model.tar.gz lands when the job completes."""
    base = spec.output_s3_uri
    if base.endswith(contract.MODEL_FILENAME):
        return base
    return base.rstrip("/") + "/" + contract.MODEL_FILENAME


# ------------------------------------------------------------------------------------------- same job?
#: The parts of a CreateProcessingJob request that DescribeProcessingJob gives back, in the order a difference
#: is reported. Tags are not in a description (ListTags would be another call and another permission): two
#: requests differing only in tags are the same job.
COMPARED_FIELDS = ("AppSpecification", "ProcessingInputs", "ProcessingOutputConfig", "Environment",
                   "ProcessingResources", "RoleArn", "NetworkConfig", "StoppingCondition")
#: Values SageMaker assumes when a field is left out: a description may carry them or not (both casings: the
#: SageMaker API's and ACK's, which lower-cases the first letter).
_DEFAULTS = {"S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None", "S3InputMode": "File",
             "AppManaged": False, "EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": False}
_DEFAULTS.update({k[:1].lower() + k[1:]: v for k, v in list(_DEFAULTS.items())})
#: Lists whose order means nothing, keyed by the member's name.
_NAMED_LISTS = {"ProcessingInputs": "InputName", "Outputs": "OutputName", "Tags": "Key",
                "processingInputs": "inputName", "outputs": "outputName", "tags": "key"}
_SETS = ("Subnets", "SecurityGroupIds", "subnets", "securityGroupIDs")
#: Values not repeated in a difference line (secrets may live there).
_HIDDEN_VALUES = ("Environment", "environment")


def _normal(node: Any, key: str = "") -> Any:
    """A request or description part in a comparable form: defaults, empty values and order-free lists dropped
    or sorted, so only a difference that changes the job remains."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            v = _normal(v, k)
            if v in (None, "", [], {}) or (k in _DEFAULTS and v == _DEFAULTS[k]):
                continue
            out[k] = v
        return out
    if isinstance(node, list | tuple):
        items = [_normal(v) for v in node]
        name = _NAMED_LISTS.get(key)
        if name and all(isinstance(i, dict) for i in items):
            return {str(i.get(name, "")): i for i in items}
        if key in _SETS:
            return sorted(items)
        return items
    return node


def _first_difference(want: Any, have: Any, path: str) -> tuple[str, Any, Any] | None:
    if isinstance(want, dict) and have is None:  # down to the first leaf that one side has
        have = {}
    elif isinstance(have, dict) and want is None:
        want = {}
    if isinstance(want, dict) and isinstance(have, dict):
        for k in list(want) + [k for k in have if k not in want]:
            found = _first_difference(want.get(k), have.get(k), f"{path}.{k}" if path else k)
            if found:
                return found
        return None
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        for i, (a, b) in enumerate(zip(want, have, strict=True)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if want == have else (path, want, have)


def _shown(value: Any, limit: int = 120) -> str:
    text = "(none)" if value is None else str(value) if not isinstance(value, dict | list) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_difference(want: Any, have: Any, root: str) -> str | None:
    """None when ``have`` (what exists) is ``want`` (what this launch would create) up to defaults, empty values
    and order-free lists; else the first field that differs, ``<path>: <have> there, <want> here``."""
    found = _first_difference(_normal(want, root), _normal(have, root), root)
    if not found:
        return None
    path, want_value, have_value = found
    for name in set(_NAMED_LISTS):  # ProcessingInputs.model.S3Input -> ProcessingInputs[model].S3Input
        path = re.sub(rf"(^|\.){name}\.([^.]+)", rf"\1{name}[\2]", path)
    if any(part in _HIDDEN_VALUES for part in path.split(".")):
        return f"{path} differs"
    return f"{path}: {_shown(have_value)} there, {_shown(want_value)} here"


def request_difference(request: dict[str, Any], description: dict[str, Any]) -> str | None:
    """None when ``description`` (DescribeProcessingJob) is the job ``request`` (CreateProcessingJob) would
    create; else the first field that differs, e.g. ``AppSpecification.ImageUri: 'a' there, 'b' here``."""
    for name in COMPARED_FIELDS:
        diff = first_difference(request.get(name), description.get(name), name)
        if diff:
            return diff
    return None
