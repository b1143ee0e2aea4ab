"""The SageMaker backend: a launcher component that runs the repack step as a SageMaker Processing job.

The component runs in a small pod (``SMALL_RESOURCES``): it stages the model to S3 (unless it is already there),
creates or re-attaches to the Processing job running our image with ``dummy-training repack``, streams the job's
CloudWatch logs into the pod log, stops the job when the task is cancelled, and delivers the repacked model into
``output_model``, which is the archive itself (downloaded, or with ``download_model=False`` left in S3, the
artifact's uri then being the model.tar.gz object). The logic is
``dummy_training.sagemaker.launcher``; the function here is thin.

Job names: pass ``kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER`` and ``kfp_task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER``
(``sagemaker_repack`` does) so a retried task re-attaches to its job instead of starting a duplicate.

Literal defaults below (not ``contract.*``): the component's source runs in the container without this module's
imports. ``tests/test_sagemaker_kfp.py`` checks they equal the contract's.
"""

# No ``from __future__ import annotations``: KFP reads the component annotations at decoration time.
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Metrics, Model, Output

from dummy_training.kfp.components import IMAGE, runs_in_image
from dummy_training.kfp.components.task_settings import SMALL_RESOURCES, configure


@runs_in_image
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def sagemaker_dummy_training(
    model: Input[Model],
    output_model: Output[Model],
    report: Output[Markdown],
    metrics: Output[Metrics],
    role_arn: str,
    image_uri: str,
    s3_prefix: str,
    hyperparameters: Input[Artifact] | None = None,
    hyperparameters_json: str = "",
    s3_output_prefix: str = "",
    region: str = "",
    endpoint_url: str = "",
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
    volume_size_gb: int = 30,
    max_runtime_seconds: int = 1200,
    volume_kms_key_id: str = "",
    output_kms_key_id: str = "",
    subnets: list = None,
    security_group_ids: list = None,
    enable_network_isolation: bool = False,
    enable_inter_container_traffic_encryption: bool = False,
    environment: dict = None,
    tags: dict = None,
    assume_role_arn: str = "",
    job_name: str = "",
    kfp_run_id: str = "",
    kfp_task_id: str = "",
    s3_direct: bool = False,
    download_model: bool = True,
    timeout_seconds: int = 0,
) -> NamedTuple("Outputs", [("model_s3_uri", str), ("job_arn", str)]):
    """Repack a pretrained model.tar.gz as a SageMaker Processing job running the dummy-training image.

    Args:
        model: The pretrained model.tar.gz: an s3:// artifact is used in place, a local one is staged to S3.
        role_arn: IAM role the Processing job runs with (S3 read/write on the prefixes, ECR pull, CloudWatch Logs).
        image_uri: The image the job runs (ECR): staged jobs need the <version>-root variant; s3_direct: either.
        s3_prefix: s3:// prefix for staged inputs (<prefix>/<job>/input/) and, by default, the output.
        hyperparameters: hyperparameters.json to inject when the archive has none (s3:// artifact or local file).
        hyperparameters_json: Hyperparameters to inject as an inline JSON object; give this or hyperparameters.
        s3_output_prefix: s3:// prefix for the output (<prefix>/<job>/output/model.tar.gz); empty for s3_prefix.
        region: AWS region; empty for the pod's AWS_REGION / AWS_DEFAULT_REGION.
        endpoint_url: Endpoint URL for S3, SageMaker and CloudWatch Logs (tests, private endpoints); empty for AWS.
        instance_type: Processing instance type.
        instance_count: Number of processing instances.
        volume_size_gb: Instance volume size in GB (staged mode holds input and output on it).
        max_runtime_seconds: SageMaker stops the job after this many seconds.
        volume_kms_key_id: KMS key for the instance volume; empty for none.
        output_kms_key_id: KMS key for the output upload; empty for none.
        subnets: VPC subnet ids (with security_group_ids); empty for no VPC.
        security_group_ids: VPC security group ids (with subnets).
        enable_network_isolation: Run the container without network access (not with s3_direct).
        enable_inter_container_traffic_encryption: Encrypt traffic between processing instances.
        environment: Environment variables for the container.
        tags: Tags for the Processing job.
        assume_role_arn: Role the launcher assumes (STS) for its own AWS calls; empty for the pod's credentials.
        job_name: Explicit job name; empty to derive one from kfp_run_id and kfp_task_id.
        kfp_run_id: The KFP run id (dsl.PIPELINE_JOB_ID_PLACEHOLDER), for the derived job name.
        kfp_task_id: The KFP task id (dsl.PIPELINE_TASK_ID_PLACEHOLDER), for the derived job name.
        s3_direct: The job repacks S3 to S3 with its role: no inputs copied to the volume, no size limit.
        download_model: Download the repacked model into output_model; false leaves it in S3 (uri = its S3 object).
        timeout_seconds: Stop the job when it has not ended after this long; 0 for max_runtime_seconds + 1800.
        output_model: The repacked model.tar.gz itself (its S3 object if not downloaded); size, sha256, decision.
        report: The job as Markdown (name, ARN, status, billable seconds, links), then the job's own repack report.
        metrics: Seconds, job and billable seconds, and the job's repack figures (members, bytes), for comparing runs.

    Returns:
        model_s3_uri: s3:// URI of the repacked model.tar.gz.
        job_arn: ARN of the SageMaker Processing job.
    """
    from collections import namedtuple

    from dummy_training.kfp.runtime import artifact_location, run_sagemaker_component
    from dummy_training.sagemaker.launcher import LaunchConfig

    config = LaunchConfig(
        model=artifact_location(model) or "",
        hyperparameters=artifact_location(hyperparameters),
        hyperparameters_json=hyperparameters_json or None,
        role_arn=role_arn,
        image_uri=image_uri,
        s3_prefix=s3_prefix or None,
        s3_output_prefix=s3_output_prefix or None,
        region=region or None,
        endpoint_url=endpoint_url or None,
        assume_role_arn=assume_role_arn or None,
        job_name=job_name or None,
        job_name_parts=tuple(p for p in (kfp_run_id, kfp_task_id) if p),
        instance_type=instance_type,
        instance_count=instance_count,
        volume_size_gb=volume_size_gb,
        max_runtime_seconds=max_runtime_seconds,
        volume_kms_key_id=volume_kms_key_id or None,
        output_kms_key_id=output_kms_key_id or None,
        subnets=list(subnets or []),
        security_group_ids=list(security_group_ids or []),
        enable_network_isolation=enable_network_isolation,
        enable_inter_container_traffic_encryption=enable_inter_container_traffic_encryption,
        environment={str(k): str(v) for k, v in (environment or {}).items()},
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        s3_direct=s3_direct,
        timeout_seconds=timeout_seconds or None,
    )
    result = run_sagemaker_component(config, output_model, download=download_model, report=report, metrics=metrics)
    return namedtuple("Outputs", ["model_s3_uri", "job_arn"])(result.model_s3_uri, result.job_arn)


#: components/<name>/component.yaml (see the package docstring).
COMPONENTS = {"sagemaker_dummy_training": sagemaker_dummy_training}


# ------------------------------------------------------------------------------------- pipeline pieces
def sagemaker_repack(model_uri: Any, hyperparameters_uri: Any, hyperparameters_json: Any, aws_secret_name: Any,
                     **launcher_args: Any) -> None:
    """The sagemaker branch: import the URIs, run the launcher (job name from the run and task), check the result.

    Called inside a ``dsl.Elif`` with pipeline parameters (channels); ``launcher_args`` go to the component
    (role_arn, image_uri, s3_prefix, region, ...).
    """
    from dummy_training.kfp.components.steps import check_model_op

    args = {"kfp_run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER, "kfp_task_id": dsl.PIPELINE_TASK_ID_PLACEHOLDER,
            **launcher_args}
    model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
    model.set_display_name("import-model")
    with dsl.If(hyperparameters_uri != "", name="sagemaker-with-hyperparameters-file"):
        hp = dsl.importer(artifact_uri=hyperparameters_uri, artifact_class=dsl.Artifact, reimport=False)
        hp.set_display_name("import-hyperparameters")
        job = configure(sagemaker_dummy_training(model=model.output, hyperparameters=hp.output,
                                                 hyperparameters_json=hyperparameters_json, **args),
                        display_name="sagemaker-job", resources=SMALL_RESOURCES, aws_secret_name=aws_secret_name)
        configure(check_model_op(model=job.outputs["output_model"]), display_name="check", resources=SMALL_RESOURCES)
    with dsl.Else(name="sagemaker-without-hyperparameters-file"):
        job = configure(sagemaker_dummy_training(model=model.output, hyperparameters_json=hyperparameters_json,
                                                 **args),
                        display_name="sagemaker-job", resources=SMALL_RESOURCES, aws_secret_name=aws_secret_name)
        configure(check_model_op(model=job.outputs["output_model"]), display_name="check", resources=SMALL_RESOURCES)
