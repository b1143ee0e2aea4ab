"""The dummy-training pipeline: repack a pretrained model.tar.gz with hyperparameters.json on a chosen backend.

Parameters are URI strings (``kfp.local`` cannot take pipeline-level artifact inputs); ``dsl.importer`` turns
them into artifacts for the native branch. Each backend is one branch of ``dsl.If/Elif/Else`` on ``backend``,
and every branch runs its own downstream check (``kfp.local`` cannot merge artifacts across branches with
``dsl.OneOf``). An unknown backend fails the run.

Compile with ``dummy-training compile`` (writes pipelines/dummy_training_pipeline.yaml); run locally with
``dummy-training demo``; upload with ``kfp pipeline create -p dummy-training pipelines/dummy_training_pipeline.yaml``.
"""

# No ``from __future__ import annotations``: KFP reads the pipeline annotations at decoration time.
from kfp import dsl

from dummy_training.kfp_components.steps import KNOWN_BACKENDS, native_repack, unknown_backend_op
from dummy_training.kfp_components.task_settings import DEFAULT_AWS_SECRET

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
):
    """Repack a pretrained model.tar.gz so it carries a root hyperparameters.json.

    Args:
        model_uri: URI of the pretrained model.tar.gz (s3://, minio://, gs://, or a local path with kfp.local).
        hyperparameters_uri: URI of hyperparameters.json to inject when the archive has none; empty for none.
        hyperparameters_json: Hyperparameters to inject as an inline JSON object; empty for none.
        backend: Where the repack runs: kubernetes (in the pipeline's pod), sagemaker or ack.
        aws_secret_name: Kubernetes secret whose AWS_* keys become environment variables (optional).
    """
    with dsl.If(backend == "kubernetes", name="backend-kubernetes"):
        native_repack(model_uri, hyperparameters_uri, hyperparameters_json, aws_secret_name)

    # SageMaker: add your branch here, e.g.
    #     with dsl.Elif(backend == "sagemaker", name="backend-sagemaker"):
    #         job = configure(sagemaker_op(...), resources=SMALL_RESOURCES, aws_secret_name=aws_secret_name)
    #         (configure/SMALL_RESOURCES from dummy_training.kfp_components.task_settings)
    #         ...its own check step...
    # ACK: add your branch here:
    #     with dsl.Elif(backend == "ack", name="backend-ack"):
    #         ...

    with dsl.Else(name="unknown-backend"):  # keep last
        unknown_backend_op(backend=backend, known=", ".join(KNOWN_BACKENDS)).set_display_name("unknown-backend")


#: What `dummy-training compile` compiles to pipelines/dummy_training_pipeline.yaml.
PIPELINE = dummy_training_pipeline
