"""Pipeline helper steps (not published components: no ``COMPONENTS`` here).

- ``check_model_op``: checks a repacked model the way a downstream packaging step would (opens the archive,
  reads its root hyperparameters.json, fails when absent). Deliberately independent of the engine.
- ``unknown_backend_op``: the ``dsl.Else`` of the backend switch; fails with the list of known backends, so a
  typo in ``backend`` fails the run instead of silently doing nothing.
- ``native_repack(...)``: the kubernetes branch of the pipelines (import the URIs, repack in the pod, check),
  shared by ``dummy_training_pipeline`` and the ``ParallelFor`` pipeline.
"""

# No ``from __future__ import annotations``: KFP reads the component annotations at decoration time.
from typing import Any

from kfp import dsl
from kfp.dsl import Input, Model

from dummy_training.kfp_components import IMAGE
from dummy_training.kfp_components.native import dummy_training
from dummy_training.kfp_components.task_settings import SMALL_RESOURCES, configure

#: The values of the pipelines' ``backend`` parameter that have a branch (extend when you add one).
KNOWN_BACKENDS = ("kubernetes", "sagemaker", "ack")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check_model_op(model: Input[Model]) -> str:
    """Check a repacked model the way a packaging step would: open it, read its root hyperparameters.json.

    Args:
        model: The repacked model (model.tar.gz, or a directory holding it).

    Returns:
        The archive's hyperparameters as canonical JSON; the task fails when the archive has none.
    """
    from dummy_training.kfp_runtime import check_model

    return check_model(model.path)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def unknown_backend_op(backend: str, known: str):
    """Fail the run: ``backend`` has no branch in this pipeline.

    Args:
        backend: The backend the run asked for.
        known: The backends this pipeline has branches for, comma-separated.
    """
    raise SystemExit(f"dummy-training: error: unknown backend {backend!r}; this pipeline knows: {known}")


# ------------------------------------------------------------------------------------- pipeline pieces
def native_repack(model_uri: Any, hyperparameters_uri: Any, hyperparameters_json: Any, aws_secret_name: Any) -> None:
    """The kubernetes branch: import the URIs, repack in the pod, check the result (each inside its sub-branch).

    Called inside a ``dsl.If``/``dsl.ParallelFor`` context with pipeline parameters (channels) as arguments.
    """
    model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
    model.set_display_name("import-model")
    with dsl.If(hyperparameters_uri != "", name="with-hyperparameters-file"):
        hp = dsl.importer(artifact_uri=hyperparameters_uri, artifact_class=dsl.Artifact, reimport=False)
        hp.set_display_name("import-hyperparameters")
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
