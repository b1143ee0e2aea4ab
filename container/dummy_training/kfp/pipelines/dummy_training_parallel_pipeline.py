"""Repack a list of models in parallel (``dsl.ParallelFor``), each with the same hyperparameters.

Every iteration imports its model, repacks it in the pod and checks the result, exactly like the kubernetes
branch of ``dummy_training_pipeline`` (it reuses that branch).

Compile with ``dummy-training compile`` (writes pipelines/dummy_training_parallel_pipeline.yaml).
"""

# No ``from __future__ import annotations``: KFP reads the pipeline annotations at decoration time.
from kfp import dsl

from dummy_training.kfp.components.steps import native_repack
from dummy_training.kfp.components.task_settings import DEFAULT_AWS_SECRET

DEFAULT_PARALLELISM = 4


@dsl.pipeline(
    name="dummy-training-parallel-pipeline",
    description="Repack a list of pretrained model.tar.gz archives in parallel, each so it carries a root "
    "hyperparameters.json (in the pipeline's pods).",
)
def dummy_training_parallel_pipeline(
    model_uris: list,
    hyperparameters_uri: str = "",
    hyperparameters_json: str = "",
    aws_secret_name: str = DEFAULT_AWS_SECRET,
):
    """Repack every model of ``model_uris`` (at most DEFAULT_PARALLELISM at a time).

    Args:
        model_uris: URIs of the pretrained model.tar.gz archives (JSON list of strings).
        hyperparameters_uri: URI of hyperparameters.json to inject where an archive has none; empty for none.
        hyperparameters_json: Hyperparameters to inject as an inline JSON object; empty for none.
        aws_secret_name: Kubernetes secret whose AWS_* keys become environment variables (optional).
    """
    with dsl.ParallelFor(model_uris, parallelism=DEFAULT_PARALLELISM, name="each-model") as model_uri:
        native_repack(model_uri, hyperparameters_uri, hyperparameters_json, aws_secret_name)


#: What `dummy-training compile` compiles to pipelines/dummy_training_parallel_pipeline.yaml.
PIPELINE = dummy_training_parallel_pipeline
