"""For SageMaker Pipelines users: a ``ProcessingStep`` that runs the same image with the same contract.

``processing_step(...)`` builds the ``CreateProcessingJob`` request with ``processing_job`` (the very request the
KFP launcher sends) and translates it field by field into the SageMaker Python SDK's ``Processor``,
``ProcessingInput``/``ProcessingOutput`` and ``ProcessingStep``. Paths, names, entrypoint and arguments therefore
come from ``contract``; nothing is spelled twice.

Pipeline variables (``ParameterString``, step properties) are accepted for the model, hyperparameters and
output URIs: the request is built with placeholder URIs and the real values are substituted afterwards.

Needs the SDK's v2 API (``sagemaker.processing``, ``sagemaker.workflow.steps``; ``pip install
'sagemaker>=2.200,<3'``), imported only when the function is called, so the package does not depend on it.
"""

from __future__ import annotations

from typing import Any

from dummy_training.errors import RuntimeIOError
from dummy_training.sagemaker import processing_job
from dummy_training.sagemaker.processing_job import ProcessingJobSpec

# placeholders that pass ProcessingJobSpec.validate(); replaced by the caller's values (strings or pipeline vars)
_MODEL = "s3://dummy-training-placeholder/model/model.tar.gz"
_HYPERPARAMETERS = "s3://dummy-training-placeholder/config/hyperparameters.json"
_OUTPUT = "s3://dummy-training-placeholder/output"
_STEP_JOB_NAME = "dummy-training-step"  # the step's job name is chosen by SageMaker Pipelines


def _sdk() -> dict[str, Any]:
    try:
        from sagemaker.network import NetworkConfig
        from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
        from sagemaker.workflow.steps import ProcessingStep
    except ImportError as exc:
        raise RuntimeIOError(
            "the SageMaker Pipelines step needs the SageMaker Python SDK v2 API "
            f"(pip install 'sagemaker>=2.200,<3'): {exc}"
        ) from None
    return {"Processor": Processor, "ProcessingInput": ProcessingInput, "ProcessingOutput": ProcessingOutput,
            "ProcessingStep": ProcessingStep, "NetworkConfig": NetworkConfig}


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
    """A ``sagemaker.workflow.steps.ProcessingStep`` running ``dummy-training repack`` in ``image_uri``.

    ``model_s3_uri``: the model (an S3 prefix or key; staged mode downloads it to the container's model dir, so
    name the object ``model.tar.gz``). ``output_s3_uri``: where ``model.tar.gz`` is written. ``spec_fields``: any
    other ``ProcessingJobSpec`` field (instance_type, volume_size_gb, subnets, environment, tags, ...).
    ``step_kwargs``: passed to ``ProcessingStep`` (depends_on, cache_config, retry_policies, display_name, ...).
    The step's ``properties.ProcessingOutputConfig.Outputs["model"].S3Output.S3Uri`` is the output prefix.
    """
    sdk = _sdk()
    mapping: dict[str, Any] = {_MODEL: model_s3_uri, _OUTPUT: output_s3_uri}
    if hyperparameters_s3_uri is not None:
        mapping[_HYPERPARAMETERS] = hyperparameters_s3_uri
    spec = ProcessingJobSpec(
        job_name=_STEP_JOB_NAME, role_arn=role_arn, image_uri=image_uri, model_s3_uri=_MODEL, output_s3_uri=_OUTPUT,
        hyperparameters_s3_uri=_HYPERPARAMETERS if hyperparameters_s3_uri is not None else None,
        s3_direct=s3_direct, **spec_fields,
    )
    request = _substitute(processing_job.build_create_processing_job_request(spec), mapping)

    cluster = request["ProcessingResources"]["ClusterConfig"]
    net = request.get("NetworkConfig", {})
    vpc = net.get("VpcConfig", {})
    network_config = None
    if net:
        network_config = sdk["NetworkConfig"](
            enable_network_isolation=net.get("EnableNetworkIsolation", False),
            encrypt_inter_container_traffic=net.get("EnableInterContainerTrafficEncryption", False),
            security_group_ids=vpc.get("SecurityGroupIds"),
            subnets=vpc.get("Subnets"),
        )
    output_config = request.get("ProcessingOutputConfig", {})
    processor = sdk["Processor"](
        role=request["RoleArn"],
        image_uri=request["AppSpecification"]["ImageUri"],
        instance_count=cluster["InstanceCount"],
        instance_type=cluster["InstanceType"],
        entrypoint=request["AppSpecification"]["ContainerEntrypoint"],
        volume_size_in_gb=cluster["VolumeSizeInGB"],
        volume_kms_key=cluster.get("VolumeKmsKeyId"),
        output_kms_key=output_config.get("KmsKeyId"),
        max_runtime_in_seconds=request["StoppingCondition"]["MaxRuntimeInSeconds"],
        env=request.get("Environment"),
        tags=request.get("Tags"),
        network_config=network_config,
        sagemaker_session=sagemaker_session,
    )
    inputs = [
        sdk["ProcessingInput"](
            source=i["S3Input"]["S3Uri"],
            destination=i["S3Input"]["LocalPath"],
            input_name=i["InputName"],
            s3_data_type=i["S3Input"]["S3DataType"],
            s3_input_mode=i["S3Input"]["S3InputMode"],
            s3_data_distribution_type=i["S3Input"]["S3DataDistributionType"],
            s3_compression_type=i["S3Input"]["S3CompressionType"],
        )
        for i in request.get("ProcessingInputs", [])
    ]
    outputs = [
        sdk["ProcessingOutput"](
            source=o["S3Output"]["LocalPath"],
            destination=o["S3Output"]["S3Uri"],
            output_name=o["OutputName"],
            s3_upload_mode=o["S3Output"]["S3UploadMode"],
        )
        for o in output_config.get("Outputs", [])
    ]
    return sdk["ProcessingStep"](
        name=name,
        processor=processor,
        inputs=inputs or None,
        outputs=outputs or None,
        job_arguments=request["AppSpecification"]["ContainerArguments"],
        **(step_kwargs or {}),
    )
