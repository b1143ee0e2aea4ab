"""For SageMaker Pipelines users: a ``ProcessingStep`` that runs the same image with the same contract.

``processing_step(...)`` builds the ``CreateProcessingJob`` request with ``processing_job`` (the very request the
KFP launcher sends) and translates it field by field into the SageMaker Python SDK's ``Processor``, processing
inputs/outputs and ``ProcessingStep``. Paths, names, entrypoint and arguments therefore come from ``contract``;
nothing is spelled twice. ``output_s3_uri(step)`` is where the step writes the model, as a step property.

Both SDK majors are supported, whichever is installed (``pip install 'kfp-sagemaker-dummy-training[sagemaker]'``
installs v3): v3 (``sagemaker>=3``: ``sagemaker.core`` + ``sagemaker.mlops``) and v2 (``sagemaker<3``:
``sagemaker.processing`` + ``sagemaker.workflow``). Only the constructors of the inputs and outputs differ; the
rest of the translation is shared. The SDK is imported only when a step is built, so the package does not
depend on it.

Pipeline variables (``ParameterString``, step properties, ``Join``) are accepted for the model, hyperparameters
and output URIs: the request is built with placeholder URIs for them and the variables are substituted
afterwards. Plain strings are validated like the launcher's (``s3://`` only: a local path would make the SDK
upload it to the default bucket while the pipeline is defined).

The SDK's v3 needs an AWS region as soon as it is imported (``AWS_DEFAULT_REGION`` or a profile's region), and
no credentials. A ``PipelineSession`` made here ignores the SDK's defaults files
(``~/.config/sagemaker/config.yaml`` ...), which could otherwise add tags, KMS keys or network isolation that
the launcher's request does not have; a session passed by the caller is used as it is, defaults included.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dummy_training import contract
from dummy_training.errors import InvalidInputError, RuntimeIOError
from dummy_training.sagemaker import processing_job
from dummy_training.sagemaker.processing_job import ProcessingJobSpec

# placeholders that pass ProcessingJobSpec.validate(); replaced by the caller's pipeline variables
_MODEL = "s3://dummy-training-placeholder/model/model.tar.gz"
_HYPERPARAMETERS = "s3://dummy-training-placeholder/config/hyperparameters.json"
_OUTPUT = "s3://dummy-training-placeholder/output"
_STEP_JOB_NAME = "dummy-training-step"  # the step's job name is chosen by SageMaker Pipelines

INSTALL_HINT = "pip install 'kfp-sagemaker-dummy-training[sagemaker]' (or pip install 'sagemaker>=3')"
REGION_HINT = "set AWS_DEFAULT_REGION (or a region in your AWS config profile)"
#: a ``sagemaker_config`` with no defaults (a session made without one reads the SDK's config files)
NO_SDK_DEFAULTS = {"SchemaVersion": "1.0"}


@dataclass(frozen=True)
class _Sdk:
    """One SDK major: its classes, and how a request's ProcessingInputs/Outputs entry becomes its objects."""

    major: int
    processor: Any
    network_config: Any
    pipeline_session: Any
    processing_step: Any
    processing_input: Callable[[dict[str, Any]], Any]
    processing_output: Callable[[dict[str, Any]], Any]


def installed_sdk_major() -> int | None:
    """3 or 2 by the API the installed ``sagemaker`` distribution has (not by its version string), else None."""
    for major, module in ((3, "sagemaker.mlops"), (2, "sagemaker.workflow")):
        try:
            if importlib.util.find_spec(module) is not None:
                return major
        except (ImportError, ValueError):  # no (or a blocked) ``sagemaker`` package
            continue
    return None


def _sdk_v3() -> _Sdk:
    from botocore.exceptions import NoRegionError

    try:
        from sagemaker.core.network import NetworkConfig
        from sagemaker.core.processing import Processor
        from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
        from sagemaker.core.workflow.pipeline_context import PipelineSession
        from sagemaker.mlops.workflow.steps import ProcessingStep
    except NoRegionError:
        raise RuntimeIOError(f"the SageMaker Python SDK v3 needs an AWS region to be imported: {REGION_HINT}") from None
    except ImportError as exc:
        raise RuntimeIOError(f"the SageMaker Python SDK v3 is incomplete ({exc}): {INSTALL_HINT}") from None

    def processing_input(i: dict[str, Any]) -> Any:
        s3 = i["S3Input"]
        return ProcessingInput(input_name=i["InputName"], app_managed=i["AppManaged"], s3_input=ProcessingS3Input(
            s3_uri=s3["S3Uri"], local_path=s3["LocalPath"], s3_data_type=s3["S3DataType"],
            s3_input_mode=s3["S3InputMode"], s3_data_distribution_type=s3["S3DataDistributionType"],
            s3_compression_type=s3["S3CompressionType"]))

    def processing_output(o: dict[str, Any]) -> Any:
        s3 = o["S3Output"]
        return ProcessingOutput(output_name=o["OutputName"], app_managed=o["AppManaged"], s3_output=ProcessingS3Output(
            s3_uri=s3["S3Uri"], local_path=s3["LocalPath"], s3_upload_mode=s3["S3UploadMode"]))

    return _Sdk(3, Processor, NetworkConfig, PipelineSession, ProcessingStep, processing_input, processing_output)


def _sdk_v2() -> _Sdk:
    try:
        from sagemaker.network import NetworkConfig
        from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
        from sagemaker.workflow.pipeline_context import PipelineSession
        from sagemaker.workflow.steps import ProcessingStep
    except ImportError as exc:
        raise RuntimeIOError(f"the SageMaker Python SDK v2 is incomplete ({exc}): {INSTALL_HINT}") from None

    def processing_input(i: dict[str, Any]) -> Any:
        s3 = i["S3Input"]
        return ProcessingInput(
            input_name=i["InputName"], app_managed=i["AppManaged"], source=s3["S3Uri"], destination=s3["LocalPath"],
            s3_data_type=s3["S3DataType"], s3_input_mode=s3["S3InputMode"],
            s3_data_distribution_type=s3["S3DataDistributionType"], s3_compression_type=s3["S3CompressionType"])

    def processing_output(o: dict[str, Any]) -> Any:
        s3 = o["S3Output"]
        return ProcessingOutput(output_name=o["OutputName"], app_managed=o["AppManaged"], source=s3["LocalPath"],
                                destination=s3["S3Uri"], s3_upload_mode=s3["S3UploadMode"])

    return _Sdk(2, Processor, NetworkConfig, PipelineSession, ProcessingStep, processing_input, processing_output)


def load_sdk() -> _Sdk:
    """The installed SDK's classes; a one-line ``RuntimeIOError`` naming what to install when there is none."""
    major = installed_sdk_major()
    if major is None:
        raise RuntimeIOError(f"the SageMaker Pipelines step needs the SageMaker Python SDK: {INSTALL_HINT}")
    return _sdk_v3() if major == 3 else _sdk_v2()


def pipeline_session(sdk: _Sdk | None = None) -> Any:
    """A ``PipelineSession`` of the installed SDK that applies no defaults from the SDK's config files.

    Made with a minimal ``sagemaker_config`` (so no file is read), then given an empty one: the SDK skips its
    per-lookup schema validation of a non-empty config, which costs ~0.3 s per looked-up field.
    """
    import boto3

    sdk = sdk or load_sdk()
    if boto3.Session().region_name is None:
        raise RuntimeIOError(f"the SageMaker Pipelines step needs an AWS region: {REGION_HINT}, "
                             "or pass sagemaker_session=PipelineSession(...)")
    session = sdk.pipeline_session(sagemaker_config=dict(NO_SDK_DEFAULTS))
    session.sagemaker_config = {}
    return session


def _session(sdk: _Sdk, sagemaker_session: Any) -> Any:
    if sagemaker_session is None:
        return pipeline_session(sdk)
    if not isinstance(sagemaker_session, sdk.pipeline_session):
        # any other session would make Processor.run() start a real job instead of returning the step's arguments
        raise InvalidInputError(f"sagemaker_session must be a {sdk.pipeline_session.__module__}.PipelineSession, "
                                f"got {type(sagemaker_session).__name__}")
    return sagemaker_session


def step_from_request(name: str, request: dict[str, Any], *, sdk: _Sdk | None = None, sagemaker_session: Any = None,
                      step_kwargs: dict[str, Any] | None = None) -> Any:
    """A ``ProcessingStep`` whose definition ``Arguments`` are ``request`` (a ``CreateProcessingJob`` request).

    The definition differs from the request only where SageMaker Pipelines decides: no ``ProcessingJobName``,
    and a ``NetworkConfig`` always states ``EnableNetworkIsolation`` (False, the API's default, when absent).
    """
    sdk = sdk or load_sdk()
    session = _session(sdk, sagemaker_session)
    app = request["AppSpecification"]
    cluster = request["ProcessingResources"]["ClusterConfig"]
    output_config = request.get("ProcessingOutputConfig", {})
    network_config = None
    if net := request.get("NetworkConfig"):
        vpc = net.get("VpcConfig", {})
        network_config = sdk.network_config(
            enable_network_isolation=net.get("EnableNetworkIsolation", False),
            encrypt_inter_container_traffic=net.get("EnableInterContainerTrafficEncryption"),
            security_group_ids=vpc.get("SecurityGroupIds"),
            subnets=vpc.get("Subnets"),
        )
    processor = sdk.processor(
        role=request["RoleArn"],
        image_uri=app["ImageUri"],
        entrypoint=app["ContainerEntrypoint"],
        instance_count=cluster["InstanceCount"],
        instance_type=cluster["InstanceType"],
        volume_size_in_gb=cluster["VolumeSizeInGB"],
        volume_kms_key=cluster.get("VolumeKmsKeyId"),
        output_kms_key=output_config.get("KmsKeyId"),
        max_runtime_in_seconds=request["StoppingCondition"]["MaxRuntimeInSeconds"],
        env=request.get("Environment"),
        tags=request.get("Tags"),
        network_config=network_config,
        sagemaker_session=session,
    )
    with warnings.catch_warnings():  # under a PipelineSession run() starts nothing, and says so in a warning
        warnings.filterwarnings("ignore", message="Running within a PipelineSession")
        step_args = processor.run(
            inputs=[sdk.processing_input(i) for i in request.get("ProcessingInputs", [])] or None,
            outputs=[sdk.processing_output(o) for o in output_config.get("Outputs", [])] or None,
            arguments=app["ContainerArguments"],
        )
    return sdk.processing_step(name=name, step_args=step_args, **(step_kwargs or {}))


def _substitute(value: Any, mapping: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    return value


def processing_step(
    name: str,
    *,
    role_arn: str,
    image_uri: str,
    model_s3_uri: Any,
    output_s3_uri: Any,
    hyperparameters_s3_uri: Any = None,
    s3_direct: bool = False,
    sagemaker_session: Any = None,
    step_kwargs: dict[str, Any] | None = None,
    **spec_fields: Any,
) -> Any:
    """A SageMaker Pipelines ``ProcessingStep`` running ``dummy-training repack`` in ``image_uri``.

    ``model_s3_uri``: the model (an S3 prefix or key; staged mode downloads it to the container's model dir, so
    name the object ``model.tar.gz``). ``output_s3_uri``: where ``model.tar.gz`` is written. Each of the three
    URIs is an ``s3://`` string or a pipeline variable. ``spec_fields``: any other ``ProcessingJobSpec`` field
    (instance_type, volume_size_gb, subnets, environment, tags, ...). ``sagemaker_session``: a
    ``PipelineSession`` (default: a new one, without the SDK's defaults files). ``step_kwargs``: passed to
    ``ProcessingStep`` (depends_on, cache_config, retry_policies, display_name, ...).
    ``output_s3_uri(step)`` returns the output location as a step property, for downstream steps.
    ``report_s3_uri`` (a plain ``s3://`` prefix beside the output, not inside it; default none) makes the job also
    write its own ``report.md`` and ``result.json`` there, as the launchers' jobs do.
    """
    sdk = load_sdk()  # first: without an SDK, say so before anything else
    mapping: dict[str, Any] = {}

    def placeholder(value: Any, stand_in: str) -> Any:
        if value is None or isinstance(value, str):
            return value  # validated as it is
        mapping[stand_in] = value
        return stand_in

    spec = ProcessingJobSpec(
        job_name=_STEP_JOB_NAME, role_arn=role_arn, image_uri=image_uri,
        model_s3_uri=placeholder(model_s3_uri, _MODEL), output_s3_uri=placeholder(output_s3_uri, _OUTPUT),
        hyperparameters_s3_uri=placeholder(hyperparameters_s3_uri, _HYPERPARAMETERS), s3_direct=s3_direct,
        **spec_fields,
    )
    request = _substitute(processing_job.build_create_processing_job_request(spec), mapping)
    request.pop("ProcessingJobName")
    return step_from_request(name, request, sdk=sdk, sagemaker_session=sagemaker_session, step_kwargs=step_kwargs)


def output_s3_uri(step: Any) -> Any:
    """Where ``step`` (from ``processing_step``) writes the model, as a property of the step: a downstream step
    that takes it as an input runs after ``step``. The model is ``<that>/model.tar.gz`` (in s3_direct mode the
    output URI may also name the file itself).

    Read where the launcher reads a finished job's output: the ``model`` ProcessingOutput's ``S3Uri`` (staged
    mode), else the container argument after ``--output-uri`` (s3_direct mode).
    """
    arguments = step.arguments
    outputs = arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
    if any(o.get("OutputName") == contract.PROCESSING_OUTPUT_MODEL for o in outputs):
        return step.properties.ProcessingOutputConfig.Outputs[contract.PROCESSING_OUTPUT_MODEL].S3Output.S3Uri
    container_arguments = arguments.get("AppSpecification", {}).get("ContainerArguments", [])
    flag = contract.OUTPUT_URI.flag
    for index, argument in enumerate(container_arguments[:-1]):
        if isinstance(argument, str) and argument == flag:
            return step.properties.AppSpecification.ContainerArguments[index + 1]
    raise InvalidInputError(f"step {getattr(step, 'name', step)!r} has no dummy-training model output")


def _join(on: str, values: list[Any]) -> Any:
    """The installed SDK's ``Join`` (v3 ``sagemaker.core.workflow.functions``, v2 ``sagemaker.workflow.functions``)."""
    if installed_sdk_major() == 3:
        from sagemaker.core.workflow.functions import Join
    else:
        from sagemaker.workflow.functions import Join
    return Join(on=on, values=values)


def model_s3_uri(step: Any) -> Any:
    """The repacked ``model.tar.gz`` object itself, as a property of ``step`` (so a step reading it runs after
    ``step``): what a ``RegisterModel`` / ``ModelBuilder`` step's model data or a ``ModelDataUrl`` takes, with
    nothing to append.

    Staged: the ``model`` ProcessingOutput's ``S3Uri`` joined with ``model.tar.gz`` (where SageMaker uploads the
    file). s3_direct: the output URI as the repack resolves it: a key ending in ``.tar.gz`` is the object, any other
    is a prefix that gets ``/model.tar.gz``.
    """
    uri = output_s3_uri(step)
    arguments = step.arguments
    outputs = arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
    given: Any = None
    for o in outputs:
        if o.get("OutputName") == contract.PROCESSING_OUTPUT_MODEL:
            given = o.get("S3Output", {}).get("S3Uri")
    if given is None:  # s3_direct: the argument after --output-uri
        container_arguments = arguments.get("AppSpecification", {}).get("ContainerArguments", [])
        given = container_arguments[container_arguments.index(contract.OUTPUT_URI.flag) + 1]
        if isinstance(given, str) and given.endswith((".tar.gz", ".tgz")):
            return uri
    separator = "" if isinstance(given, str) and given.endswith("/") else "/"
    return _join(separator, [uri, contract.MODEL_FILENAME])
