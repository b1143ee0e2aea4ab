"""The ACK launcher component: the repack as a SageMaker Processing job created through the Kubernetes API.

The launcher pod creates a ``sagemaker.services.k8s.aws/v1alpha1`` ``ProcessingJob`` (the ACK SageMaker
controller then creates the SageMaker job with its own IRSA role), re-attaches to it when the task is retried,
waits for ``Completed`` + ``ACK.ResourceSynced``, and deletes it when the run is cancelled (SIGTERM). The job is
the one the SageMaker component would create (same ``LaunchConfig``, same request). The pod needs RBAC on
processingjobs (``components/ack_dummy_training/rbac.yaml``) and S3 access for staging local inputs and
downloading the result (IRSA, or the AWS secret of ``task_settings.configure``). Its inputs and outputs are the
SageMaker component's (``sagemaker.py`` says why URI strings and how the job name is derived), plus
``namespace``.
"""

# No ``from __future__ import annotations``: KFP reads the component annotations at decoration time.
from typing import Any

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Model, Output

from dummy_training.kfp.components import IMAGE, ComponentInfo, runs_in_image
from dummy_training.kfp.components.task_settings import SMALL_RESOURCES, configure


@runs_in_image
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ack_dummy_training(
    model: str,
    role_arn: str,
    image_uri: str,
    output_model: Output[Model],
    model_s3_uri: dsl.OutputPath(str),
    job_arn: dsl.OutputPath(str),
    report: Output[Markdown],
    metrics: Output[Metrics],
    s3_prefix: str = "",
    s3_output_prefix: str = "",
    hyperparameters: str = "",
    hyperparameters_json: str = "",
    job_name: str = "",
    instance_type: str = "ml.m5.large",  # literals: the function's source runs alone in the executor;
    instance_count: int = 1,  # a test checks they equal the contract's defaults
    volume_size_gb: int = 30,
    max_runtime_seconds: int = 1200,
    volume_kms_key_id: str = "",
    output_kms_key_id: str = "",
    subnets: list = None,
    security_group_ids: list = None,
    enable_network_isolation: bool = False,
    enable_inter_container_traffic_encryption: bool = False,
    environment: dict = None,  # KFP spells an optional dict parameter this way
    tags: dict = None,
    s3_direct: bool = False,
    region: str = "",
    endpoint_url: str = "",
    assume_role_arn: str = "",
    download_model: bool = True,
    timeout_seconds: int = 0,
    namespace: str = "",
):
    """Run the repack as a SageMaker Processing job through the ACK SageMaker controller (a ProcessingJob resource).

    Args:
        model: The pretrained model.tar.gz: an s3:// URI, or a local path the launcher stages to S3.
        role_arn: IAM role the Processing job runs with (S3 read/write on the prefixes, ECR pull, CloudWatch Logs).
        image_uri: The image the job runs (ECR): staged jobs need the <version>-root variant; s3_direct: either.
        s3_prefix: s3:// prefix for staged inputs (<prefix>/<job>/input/) and, by default, the output.
        s3_output_prefix: s3:// prefix for the output (<prefix>/<job>/output/model.tar.gz); empty for s3_prefix.
        hyperparameters: hyperparameters.json to inject when the archive has none: s3:// URI or local path.
        hyperparameters_json: Hyperparameters to inject as an inline JSON object; give this or hyperparameters.
        job_name: Explicit job name; empty to derive one from the run and the task (the same on a retry).
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
        s3_direct: The job repacks S3 to S3 with its role: no inputs copied to the volume, no size limit.
        region: AWS region for staging and download (the job runs in the controller's region).
        endpoint_url: S3 endpoint URL for staging and download; empty for AWS.
        assume_role_arn: Role the launcher assumes (STS) for its S3 calls; empty for the pod's credentials.
        download_model: Download the repacked model into output_model; false leaves it in S3 (uri = its S3 object).
        timeout_seconds: Delete the resource (stopping the job) after this long; 0 for max_runtime_seconds + 1800.
        namespace: Namespace of the ProcessingJob resource; empty for the pod's own namespace (ACK only).
        output_model: The repacked model.tar.gz itself (its S3 object if not downloaded); size, sha256, decision.
        model_s3_uri: s3:// URI of the repacked model.tar.gz.
        job_arn: ARN of the SageMaker Processing job.
        report: The job as Markdown (name, ARN, status, console and log links), then the job's own repack report.
        metrics: Seconds, instance count, and the job's repack figures (members, bytes), for comparing runs.
    """
    from dummy_training.kfp.runtime import run_launcher_component

    run_launcher_component(
        "ack", output_model=output_model, model_s3_uri_path=model_s3_uri, job_arn_path=job_arn,
        namespace=namespace, download_model=download_model, environment=environment, tags=tags, subnets=subnets,
        security_group_ids=security_group_ids, timeout_seconds=timeout_seconds, report=report, metrics=metrics,
        model=model, role_arn=role_arn, image_uri=image_uri, s3_prefix=s3_prefix, s3_output_prefix=s3_output_prefix,
        hyperparameters=hyperparameters, hyperparameters_json=hyperparameters_json, job_name=job_name,
        instance_type=instance_type, instance_count=instance_count, volume_size_gb=volume_size_gb,
        max_runtime_seconds=max_runtime_seconds, volume_kms_key_id=volume_kms_key_id,
        output_kms_key_id=output_kms_key_id, enable_network_isolation=enable_network_isolation,
        enable_inter_container_traffic_encryption=enable_inter_container_traffic_encryption, s3_direct=s3_direct,
        region=region, endpoint_url=endpoint_url, assume_role_arn=assume_role_arn,
    )


#: components/<name>/component.yaml (see the package docstring).
COMPONENTS = {"ack_dummy_training": ack_dummy_training}

#: components/<name>/metadata.yaml (see the package docstring).
METADATA = {
    "ack_dummy_training": ComponentInfo(
        module=__name__, stability="alpha",
        external_services=(("Kubernetes", ""), ("ACK SageMaker controller", ">=1.9.1"),
                           ("Amazon SageMaker Processing", ""), ("Amazon S3", "")),
        tags=("training", "model-packaging", "sagemaker", "launcher", "ack"), last_verified="2026-12-04T00:00:00Z"),
}


# ------------------------------------------------------------------------------------- pipeline pieces
def ack_repack(model_uri: Any, hyperparameters_uri: Any, hyperparameters_json: Any, aws_secret_name: Any,
               **launcher_args: Any) -> None:
    """The ack branch: run the launcher, then check the result.

    Called inside a ``dsl.Elif`` with pipeline parameters (channels). The model and hyperparameters go in as URI
    strings, not imported artifacts: the launcher pod never reads the model, only the SageMaker job does.
    ``launcher_args`` go to the component (role_arn, image_uri, s3_prefix, namespace, ...)."""
    from dummy_training.kfp.components.steps import check_model_op

    job = configure(ack_dummy_training(model=model_uri, hyperparameters=hyperparameters_uri,
                                       hyperparameters_json=hyperparameters_json, **launcher_args),
                    display_name="ack-job", resources=SMALL_RESOURCES, aws_secret_name=aws_secret_name)
    configure(check_model_op(model=job.outputs["output_model"]), display_name="check", resources=SMALL_RESOURCES)
