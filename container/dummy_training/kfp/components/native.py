"""The native components: the repack step running in the pipeline's own pod (no SageMaker, no ACK).

- ``dummy_training``: KFP artifacts in and out. The launcher downloads the model artifact into the pod, the
  engine repacks it, and the output ``Model`` artifact is the repacked ``model.tar.gz`` itself (its path is
  the archive, not a directory), with metadata (size, sha256, decision, method).
- ``dummy_training_s3``: S3 URIs in, an S3 URI out (``model_s3_uri``, and ``output_model``, a ``Model``
  artifact whose uri is that object where KFP allows it). The model never enters the pod: the engine streams it
  from S3 and writes the output with a multipart upload (server-side copies for the unchanged prefix). Use it for
  models too large for the pod's disk.

The component functions are thin: imports inside, then a call into ``dummy_training.kfp.runtime``, which the
image carries (``install_kfp_package=False``; the image has kfp).

Note on names: the input is ``model`` (``contract.MODEL.name``, the ``--model`` flag); a Python function cannot
also have an output parameter ``model`` (``contract.OUTPUT_MODEL``), and KFP's return-value artifacts need
``dsl.get_uri``, which the KFP backend does not support. So the output artifact is ``output_model``
(``OUTPUT_ARTIFACT`` below).
"""

# No ``from __future__ import annotations``: KFP reads the component annotations at decoration time.
from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Metrics, Model, Output

from dummy_training import contract
from dummy_training.kfp.components import IMAGE, ComponentInfo, runs_in_image

#: Name of the native component's output artifact (see the module docstring for why it is not "model").
OUTPUT_ARTIFACT = contract.OUTPUT_MODEL


# ------------------------------------------------------------------------------------------ components
@runs_in_image
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def dummy_training(
    model: Input[Model],
    output_model: Output[Model],
    report: Output[Markdown],
    metrics: Output[Metrics],
    hyperparameters: Input[Artifact] | None = None,
    hyperparameters_json: str = "",
):
    """Repack a pretrained model.tar.gz so it carries a root hyperparameters.json (in the pod).

    Keeps the archive's own root hyperparameters.json when it has one (the output is the input byte for byte);
    otherwise injects the given hyperparameters at the archive root; fails (exit 1) when there are none.

    Args:
        model: The pretrained model.tar.gz (a file, or a directory holding model.tar.gz).
        hyperparameters: hyperparameters.json to inject when the archive has none (a file, or a directory holding it).
        hyperparameters_json: Hyperparameters to inject, as an inline JSON object; used when no file is given.
        output_model: The repacked model.tar.gz itself (not a directory); metadata: size, sha256, decision, method.
        report: What was decided and why, the inputs, the members, the bytes and the time, as Markdown.
        metrics: Sizes, members, seconds and bytes, for comparing runs.
    """
    from dummy_training.kfp.runtime import repack_into_artifact

    repack_into_artifact(
        model.path, hyperparameters.path if hyperparameters is not None else None, hyperparameters_json, output_model,
        report, metrics,
    )


@runs_in_image
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def dummy_training_s3(
    model: str,
    output_uri: str,
    model_s3_uri: dsl.OutputPath(str),
    output_model: Output[Model],
    report: Output[Markdown],
    metrics: Output[Metrics],
    hyperparameters: str = "",
    hyperparameters_json: str = "",
    endpoint_url: str = "",
):
    """Repack a model.tar.gz S3 to S3, streaming: the model is never downloaded into the pod.

    Same decision as the native component; the unchanged prefix of the archive is copied server-side.

    Args:
        model: s3:// URI of the pretrained model.tar.gz (or of a prefix holding model.tar.gz).
        output_uri: s3:// prefix or key to write model.tar.gz to.
        hyperparameters: s3:// URI of hyperparameters.json to inject when the archive has none; empty for none.
        hyperparameters_json: Hyperparameters to inject, as an inline JSON object; empty for none.
        endpoint_url: S3-compatible endpoint URL (e.g. MinIO); empty for AWS (or AWS_ENDPOINT_URL_S3).
        model_s3_uri: s3:// URI of the written model.tar.gz.
        output_model: The written model.tar.gz as a Model artifact (uri = its S3 object where KFP allows it).
        report: What was decided and why, the inputs, the members, the bytes and the time, as Markdown.
        metrics: Sizes, members, seconds and bytes uploaded, for comparing runs.
    """
    from dummy_training.kfp.runtime import repack_s3

    uri = repack_s3(model, hyperparameters, hyperparameters_json, output_uri, endpoint_url, report, metrics,
                    output_model=output_model)
    with open(model_s3_uri, "w") as fh:
        fh.write(uri)


#: components/<name>/component.yaml for each (see the package docstring).
COMPONENTS = {
    "dummy_training": dummy_training,
    "dummy_training_s3": dummy_training_s3,
}

#: components/<name>/metadata.yaml for each (see the package docstring).
METADATA = {
    "dummy_training": ComponentInfo(
        module=__name__, stability="beta", external_services=(("Kubernetes", ""),),
        tags=("training", "model-packaging", "sagemaker"), last_verified="2026-12-04T00:00:00Z"),
    "dummy_training_s3": ComponentInfo(
        module=__name__, stability="beta",
        external_services=(("Kubernetes", ""), ("Amazon S3 (or an S3-compatible store)", "")),
        tags=("training", "model-packaging", "sagemaker", "s3"), last_verified="2026-12-04T00:00:00Z"),
}
