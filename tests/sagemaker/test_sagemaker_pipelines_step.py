"""sagemaker_pipelines_step: the SDK objects carry exactly the launcher's CreateProcessingJob request.

The SageMaker SDK is not a test dependency (heavy; v3 is a different API). The mapping is tested against
recording stand-ins for the SDK classes; with the real SDK v2 installed, the last test checks the step's own
request arguments too.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from dummy_training import contract
from dummy_training.errors import RuntimeIOError
from dummy_training.sagemaker import processing_job

ROLE = "arn:aws:iam::123456789012:role/dummy-training"


class _Recorder:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.fixture
def fake_sdk(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    classes = {n: type(n, (_Recorder,), {}) for n in
               ("Processor", "ProcessingInput", "ProcessingOutput", "ProcessingStep", "NetworkConfig")}
    mods = {"sagemaker": types.ModuleType("sagemaker"),
            "sagemaker.processing": types.ModuleType("sagemaker.processing"),
            "sagemaker.network": types.ModuleType("sagemaker.network"),
            "sagemaker.workflow": types.ModuleType("sagemaker.workflow"),
            "sagemaker.workflow.steps": types.ModuleType("sagemaker.workflow.steps")}
    for n in ("Processor", "ProcessingInput", "ProcessingOutput"):
        setattr(mods["sagemaker.processing"], n, classes[n])
    mods["sagemaker.network"].NetworkConfig = classes["NetworkConfig"]
    mods["sagemaker.workflow.steps"].ProcessingStep = classes["ProcessingStep"]
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return classes


def _request_from_step(step: Any) -> dict[str, Any]:
    """Rebuild the CreateProcessingJob request the SDK would send from the recorded constructor arguments."""
    p = step.kwargs["processor"].kwargs
    cluster = {"InstanceCount": p["instance_count"], "InstanceType": p["instance_type"],
               "VolumeSizeInGB": p["volume_size_in_gb"]}
    if p["volume_kms_key"]:
        cluster["VolumeKmsKeyId"] = p["volume_kms_key"]
    req: dict[str, Any] = {
        "ProcessingJobName": "job-1", "RoleArn": p["role"],
        "AppSpecification": {"ImageUri": p["image_uri"], "ContainerEntrypoint": p["entrypoint"],
                             "ContainerArguments": step.kwargs["job_arguments"]},
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": p["max_runtime_in_seconds"]},
    }
    if step.kwargs["inputs"]:
        req["ProcessingInputs"] = [{"InputName": i.kwargs["input_name"], "AppManaged": False, "S3Input": {
            "S3Uri": i.kwargs["source"], "LocalPath": i.kwargs["destination"], "S3DataType": i.kwargs["s3_data_type"],
            "S3InputMode": i.kwargs["s3_input_mode"],
            "S3DataDistributionType": i.kwargs["s3_data_distribution_type"],
            "S3CompressionType": i.kwargs["s3_compression_type"]}} for i in step.kwargs["inputs"]]
    if step.kwargs["outputs"]:
        req["ProcessingOutputConfig"] = {"Outputs": [{"OutputName": o.kwargs["output_name"], "AppManaged": False,
                                                      "S3Output": {"S3Uri": o.kwargs["destination"],
                                                                   "LocalPath": o.kwargs["source"],
                                                                   "S3UploadMode": o.kwargs["s3_upload_mode"]}}
                                                     for o in step.kwargs["outputs"]]}
        if p["output_kms_key"]:
            req["ProcessingOutputConfig"]["KmsKeyId"] = p["output_kms_key"]
    net = p["network_config"]
    if net is not None:
        n = net.kwargs
        req["NetworkConfig"] = {k: v for k, v in (("EnableNetworkIsolation", n["enable_network_isolation"]),
                                                  ("EnableInterContainerTrafficEncryption",
                                                   n["encrypt_inter_container_traffic"])) if v}
        if n["subnets"]:
            req["NetworkConfig"]["VpcConfig"] = {"SecurityGroupIds": n["security_group_ids"], "Subnets": n["subnets"]}
    if p["env"]:
        req["Environment"] = p["env"]
    if p["tags"]:
        req["Tags"] = p["tags"]
    return req


@pytest.mark.parametrize("s3_direct", [False, True])
def test_step_carries_the_launchers_request(fake_sdk: dict[str, type], s3_direct: bool) -> None:
    from dummy_training.sagemaker.pipelines_step import processing_step

    fields = {"instance_type": "ml.c5.xlarge", "volume_size_gb": 64, "max_runtime_seconds": 900,
              "volume_kms_key_id": "vk", "output_kms_key_id": "ok", "subnets": ["s-1"], "security_group_ids": ["g-1"],
              "enable_inter_container_traffic_encryption": True, "environment": {"A": "1"}, "tags": {"t": "v"}}
    step = processing_step("repack", role_arn=ROLE, image_uri="img:1", model_s3_uri="s3://b/m/model.tar.gz",
                           hyperparameters_s3_uri="s3://b/h/hyperparameters.json", output_s3_uri="s3://b/out",
                           s3_direct=s3_direct, step_kwargs={"display_name": "Repack"}, **fields)
    expected = processing_job.build_create_processing_job_request(processing_job.ProcessingJobSpec(
        job_name="job-1", role_arn=ROLE, image_uri="img:1", model_s3_uri="s3://b/m/model.tar.gz",
        hyperparameters_s3_uri="s3://b/h/hyperparameters.json", output_s3_uri="s3://b/out", s3_direct=s3_direct,
        **fields))
    assert _request_from_step(step) == expected
    assert step.kwargs["name"] == "repack" and step.kwargs["display_name"] == "Repack"
    assert step.kwargs["processor"].kwargs["entrypoint"] == list(contract.CONTAINER_ENTRYPOINT)


def test_pipeline_variables_are_substituted_for_the_uris(fake_sdk: dict[str, type]) -> None:
    from dummy_training.sagemaker.pipelines_step import processing_step

    model_param, out_param = object(), object()  # stand-ins for ParameterString / step properties
    step = processing_step("repack", role_arn=ROLE, image_uri="img:1", model_s3_uri=model_param,
                           output_s3_uri=out_param)
    (inp,) = step.kwargs["inputs"]
    assert inp.kwargs["source"] is model_param
    assert inp.kwargs["destination"] == contract.CONTAINER_MODEL_DIR
    (out,) = step.kwargs["outputs"]
    assert out.kwargs["destination"] is out_param
    direct = processing_step("repack", role_arn=ROLE, image_uri="img:1", model_s3_uri=model_param,
                             output_s3_uri=out_param, s3_direct=True)
    args = direct.kwargs["job_arguments"]
    assert args[args.index(contract.MODEL.flag) + 1] is model_param
    assert args[args.index(contract.OUTPUT_URI.flag) + 1] is out_param


def test_without_the_sdk_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from dummy_training.sagemaker.pipelines_step import processing_step

    monkeypatch.setitem(sys.modules, "sagemaker", None)  # import sagemaker -> ImportError
    with pytest.raises(RuntimeIOError, match="pip install 'sagemaker"):
        processing_step("repack", role_arn=ROLE, image_uri="img:1", model_s3_uri="s3://b/m", output_s3_uri="s3://b/o")


def test_with_the_real_sdk_v2_the_step_arguments_are_the_request() -> None:
    sagemaker = pytest.importorskip("sagemaker.workflow.steps", reason="SageMaker SDK v2 not installed")
    assert sagemaker
    from sagemaker.workflow.pipeline_context import PipelineSession

    from dummy_training.sagemaker.pipelines_step import processing_step

    session = PipelineSession(default_bucket="b")
    step = processing_step("repack", role_arn=ROLE, image_uri="img:1", model_s3_uri="s3://b/m/model.tar.gz",
                           output_s3_uri="s3://b/out", sagemaker_session=session)
    args = step.arguments
    expected = processing_job.build_create_processing_job_request(processing_job.ProcessingJobSpec(
        job_name="x", role_arn=ROLE, image_uri="img:1", model_s3_uri="s3://b/m/model.tar.gz",
        output_s3_uri="s3://b/out"))
    assert args["AppSpecification"] == expected["AppSpecification"]
    assert args["ProcessingInputs"] == expected["ProcessingInputs"]
