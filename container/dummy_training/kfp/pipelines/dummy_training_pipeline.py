"""The dummy-training pipeline: repack a pretrained model.tar.gz with hyperparameters.json on a chosen backend.

Parameters are URI strings (``kfp.local`` cannot take pipeline-level artifact inputs); ``dsl.importer`` turns
them into artifacts for the native branch. Each backend is one branch of ``dsl.If/Elif/Else`` on ``backend``,
and every branch runs its own downstream check (``kfp.local`` cannot merge artifacts across branches with
``dsl.OneOf``). An unknown backend fails the run.

Compile with ``dummy-training compile`` (writes pipelines/dummy_training_pipeline.yaml; ``--image IMG
--output-dir DIR`` for your registry, from any install); run locally with
``dummy-training demo``; upload with ``kfp pipeline create -p dummy-training-pipeline
pipelines/dummy_training_pipeline.yaml`` (docs/deploy.md).
"""

# No ``from __future__ import annotations``: KFP reads the pipeline annotations at decoration time.
from kfp import dsl

from dummy_training.kfp.components.ack import ack_repack
from dummy_training.kfp.components.sagemaker import sagemaker_repack
from dummy_training.kfp.components.steps import KNOWN_BACKENDS, native_repack, unknown_backend_op
from dummy_training.kfp.components.task_settings import DEFAULT_AWS_SECRET

PIPELINE_NAME = "dummy-training-pipeline"  # not "dummy-training": that is the component (kfp would load the YAML as it)


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Repack a pretrained model.tar.gz so it carries a root hyperparameters.json "
    "(kubernetes: in the pod; sagemaker: a SageMaker Processing job; ack: through the ACK SageMaker controller).",
)
def dummy_training_pipeline(
    model_uri: str,
    hyperparameters_uri: str = "",
    hyperparameters_json: str = "",
    backend: str = "kubernetes",
    aws_secret_name: str = DEFAULT_AWS_SECRET,
    role_arn: str = "",
    image_uri: str = "",
    s3_prefix: str = "",
    region: str = "",
    s3_direct: bool = False,
):
    """Repack a pretrained model.tar.gz so it carries a root hyperparameters.json.

    Args:
        model_uri: URI of the pretrained model.tar.gz: s3://, minio://, gs:// (sagemaker/ack: s3://); kfp.local: a path.
        hyperparameters_uri: URI of hyperparameters.json to inject when the archive has none; empty for none.
        hyperparameters_json: Hyperparameters to inject as an inline JSON object; empty for none.
        backend: Where the repack runs: kubernetes (in the pipeline's pod), sagemaker or ack.
        aws_secret_name: Kubernetes secret whose AWS_* keys become environment variables (optional).
        role_arn: sagemaker/ack: IAM role the SageMaker Processing job runs with.
        image_uri: sagemaker/ack: the image the job runs (ECR); staged jobs need the <version>-root variant.
        s3_prefix: s3:// prefix for the output (kubernetes: with s3_direct) and sagemaker/ack staged inputs.
        region: sagemaker/ack: AWS region; empty for the pod's AWS_REGION / AWS_DEFAULT_REGION.
        s3_direct: Repack S3 to S3, streaming, in the pod (kubernetes) or the job (sagemaker/ack): no size limit.
    """
    with dsl.If(backend == "kubernetes", name="backend-kubernetes"):
        native_repack(model_uri, hyperparameters_uri, hyperparameters_json, aws_secret_name,
                      s3_direct=s3_direct, s3_prefix=s3_prefix)

    with dsl.Elif(backend == "sagemaker", name="backend-sagemaker"):
        sagemaker_repack(model_uri, hyperparameters_uri, hyperparameters_json, aws_secret_name, role_arn=role_arn,
                         image_uri=image_uri, s3_prefix=s3_prefix, region=region, s3_direct=s3_direct)

    with dsl.Elif(backend == "ack", name="backend-ack"):
        ack_repack(model_uri, hyperparameters_uri, hyperparameters_json, aws_secret_name, role_arn=role_arn,
                   image_uri=image_uri, s3_prefix=s3_prefix, region=region, s3_direct=s3_direct)

    with dsl.Else(name="unknown-backend"):  # keep last
        unknown_backend_op(backend=backend, known=", ".join(KNOWN_BACKENDS)).set_display_name("unknown-backend")


#: What `dummy-training compile` compiles to pipelines/dummy_training_pipeline.yaml.
PIPELINE = dummy_training_pipeline
