"""Pipeline helper steps (not published components: no ``COMPONENTS`` here).

- ``check_model_op``: checks a repacked model the way a downstream packaging step would (opens the archive,
  reads its root hyperparameters.json, fails when absent). Deliberately independent of the engine.
- ``unknown_backend_op``: the ``dsl.Else`` of the backend switch; fails with the list of known backends, so a
  typo in ``backend`` fails the run instead of silently doing nothing.
- ``check_s3_model_op``: the same check for a model in S3, streamed.
- ``native_repack(...)``: the kubernetes branch of the pipelines (repack in the pod, check; S3 to S3 when
  ``s3_direct``), shared by ``dummy_training_pipeline`` and the ``ParallelFor`` pipeline.
"""

# No ``from __future__ import annotations``: KFP reads the component annotations at decoration time.
from typing import Any

from kfp import dsl
from kfp.dsl import Input, Model

from dummy_training.kfp.components import IMAGE, runs_in_image
from dummy_training.kfp.components.native import dummy_training, dummy_training_s3
from dummy_training.kfp.components.task_settings import SMALL_RESOURCES, configure

#: The values of the pipelines' ``backend`` parameter that have a branch (extend when you add one).
KNOWN_BACKENDS = ("kubernetes", "sagemaker", "ack")


@runs_in_image
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check_model_op(model: Input[Model]) -> str:
    """Check a repacked model the way a packaging step would: open it, read its root hyperparameters.json.

    Args:
        model: The repacked model.tar.gz (the artifact itself; a directory holding model.tar.gz also works).

    Returns:
        The archive's hyperparameters as canonical JSON; the task fails when the archive has none.
    """
    from dummy_training.kfp.runtime import check_model

    return check_model(model.path)


@runs_in_image
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check_s3_model_op(model_s3_uri: str, endpoint_url: str = "") -> str:
    """Check a repacked model in S3 the way a packaging step would, streaming it (nothing downloaded to disk).

    Args:
        model_s3_uri: s3:// URI of the repacked model.tar.gz.
        endpoint_url: S3-compatible endpoint URL; empty for AWS (or AWS_ENDPOINT_URL_S3).

    Returns:
        The archive's hyperparameters as canonical JSON; the task fails when the archive has none.
    """
    from dummy_training.kfp.runtime import check_s3_model

    return check_s3_model(model_s3_uri, endpoint_url)


@runs_in_image
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def unknown_backend_op(backend: str, known: str):
    """Fail the run: ``backend`` has no branch in this pipeline.

    Args:
        backend: The backend the run asked for.
        known: The backends this pipeline has branches for, comma-separated.
    """
    raise SystemExit(f"dummy-training: error: unknown backend {backend!r}; this pipeline knows: {known}")


# ------------------------------------------------------------------------------------- pipeline pieces
def native_repack(model_uri: Any, hyperparameters_uri: Any, hyperparameters_json: Any, aws_secret_name: Any,
                  s3_direct: Any = None, s3_prefix: Any = None) -> None:
    """The kubernetes branch: repack in the pod and check the result (each inside its sub-branch).

    Called inside a ``dsl.If``/``dsl.ParallelFor`` context with pipeline parameters (channels) as arguments.
    With ``s3_direct`` (a bool pipeline parameter) true, the model stays in S3: ``dummy_training_s3`` streams it
    to ``<s3_prefix>/<run uuid>/<task uuid>/model.tar.gz`` and the check streams the result; otherwise the URIs
    are imported as artifacts, which the KFP launcher downloads into the pod.
    """
    if s3_direct is None:
        _repack_artifacts(model_uri, hyperparameters_uri, hyperparameters_json, aws_secret_name)
        return
    with dsl.If(s3_direct == True, name="s3-direct"):  # noqa: E712 - a pipeline condition, not a Python test
        output_uri = f"{s3_prefix}/{dsl.PIPELINE_JOB_ID_PLACEHOLDER}/{dsl.PIPELINE_TASK_ID_PLACEHOLDER}/"
        repack = configure(
            dummy_training_s3(model=model_uri, output_uri=output_uri, hyperparameters=hyperparameters_uri,
                              hyperparameters_json=hyperparameters_json),
            display_name="repack-s3-direct", aws_secret_name=aws_secret_name,
        )
        configure(check_s3_model_op(model_s3_uri=repack.outputs["model_s3_uri"]), display_name="check",
                  resources=SMALL_RESOURCES, aws_secret_name=aws_secret_name)
    with dsl.Else(name="via-artifacts"):
        _repack_artifacts(model_uri, hyperparameters_uri, hyperparameters_json, aws_secret_name)


def _repack_artifacts(model_uri: Any, hyperparameters_uri: Any, hyperparameters_json: Any,
                      aws_secret_name: Any) -> None:
    """Import the URIs, repack with ``dummy_training`` in the pod, check the output artifact."""
    # No display names on importers: KFP 2.17's importer launcher records its execution under the task's display
    # name, while the consumer's driver looks the producer up by task name ("cannot find producer task
    # importer_N"; seen on the real backend, tests/peers/test_kfp_cluster.py; tests/kfp/test_importer_names.py).
    model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
    with dsl.If(hyperparameters_uri != "", name="with-hyperparameters-file"):
        hp = dsl.importer(artifact_uri=hyperparameters_uri, artifact_class=dsl.Artifact, reimport=False)
        repack = configure(
            dummy_training(model=model.output, hyperparameters=hp.output, hyperparameters_json=hyperparameters_json),
            display_name="repack", aws_secret_name=aws_secret_name,
        )
        configure(check_model_op(model=repack.outputs["output_model"]), display_name="check",
                  resources=SMALL_RESOURCES)
    with dsl.Else(name="without-hyperparameters-file"):
        repack = configure(
            dummy_training(model=model.output, hyperparameters_json=hyperparameters_json),
            display_name="repack", aws_secret_name=aws_secret_name,
        )
        configure(check_model_op(model=repack.outputs["output_model"]), display_name="check",
                  resources=SMALL_RESOURCES)
