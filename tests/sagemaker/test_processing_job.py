"""The remote job description: job names, spec validation, and the CreateProcessingJob request built from the
contract."""

from __future__ import annotations

import pytest

from dummy_training import cli, contract
from dummy_training.errors import InvalidInputError
from dummy_training.sagemaker.processing_job import (
    JOB_NAME_RE,
    ProcessingJobSpec,
    build_create_processing_job_request,
    job_name,
    output_model_uri,
    validate_job_name,
)

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def spec(**kw) -> ProcessingJobSpec:  # noqa: ANN003
    base = dict(job_name="dt-job", role_arn=ROLE, image_uri="123.dkr.ecr.us-east-1.amazonaws.com/dummy-training:1",
                model_s3_uri="s3://b/in/model.tar.gz", output_s3_uri="s3://b/out/")
    base.update(kw)
    return ProcessingJobSpec(**base)


@pytest.mark.parametrize("parts", [
    ("dummy-training", "run-123", "task-abc"),
    ("weird chars!! @@ in__name", ""),
    ("x" * 200,),
    ("-leading", "trailing-"),
    ("",),
    ("a--b", "--c"),
])
def test_job_name_is_always_valid(parts: tuple[str, ...]) -> None:
    name = job_name(*parts)
    assert JOB_NAME_RE.match(name), name
    assert len(name) <= 63


def test_job_name_is_deterministic_and_distinct_when_truncated() -> None:
    a = job_name("dummy-training", "r" * 80, "task-1")
    b = job_name("dummy-training", "r" * 80, "task-2")
    assert a == job_name("dummy-training", "r" * 80, "task-1")
    assert a != b
    assert job_name("dummy-training", "run-1", "task-1") == "dummy-training-run-1-task-1"


def test_validate_job_name() -> None:
    assert validate_job_name("ok-name-1") == "ok-name-1"
    for bad in ("-bad", "bad_", "x" * 64, "has space"):
        with pytest.raises(InvalidInputError):
            validate_job_name(bad)


def test_request_staged_mode_uses_contract_paths_and_names() -> None:
    req = build_create_processing_job_request(spec(hyperparameters_s3_uri="s3://b/in/hyperparameters.json"))
    app = req["AppSpecification"]
    assert app["ContainerEntrypoint"] == [contract.CONSOLE_SCRIPT, contract.REPACK_COMMAND]
    inputs = {i["InputName"]: i["S3Input"] for i in req["ProcessingInputs"]}
    assert inputs[contract.PROCESSING_INPUT_MODEL]["LocalPath"] == contract.CONTAINER_MODEL_DIR
    assert inputs[contract.PROCESSING_INPUT_MODEL]["S3Uri"] == "s3://b/in/model.tar.gz"
    assert inputs[contract.PROCESSING_INPUT_HYPERPARAMETERS]["LocalPath"] == contract.CONTAINER_CONFIG_DIR
    (out,) = req["ProcessingOutputConfig"]["Outputs"]  # no report_s3_uri: no report channel
    assert out["OutputName"] == contract.PROCESSING_OUTPUT_MODEL
    assert out["S3Output"]["LocalPath"] == contract.CONTAINER_OUTPUT_DIR
    assert contract.REPORT_FLAG not in req["AppSpecification"]["ContainerArguments"]
    cluster = req["ProcessingResources"]["ClusterConfig"]
    assert cluster == {"InstanceCount": contract.DEFAULT_INSTANCE_COUNT,
                       "InstanceType": contract.DEFAULT_INSTANCE_TYPE,
                       "VolumeSizeInGB": contract.DEFAULT_VOLUME_SIZE_GB}
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": contract.DEFAULT_MAX_RUNTIME_SECONDS}
    assert "NetworkConfig" not in req and "Environment" not in req and "Tags" not in req


def test_report_channel_staged_is_a_second_output_beside_the_models() -> None:
    req = build_create_processing_job_request(spec(output_s3_uri="s3://b/runs/j/output",
                                                   report_s3_uri="s3://b/runs/j/report"))
    model, report = req["ProcessingOutputConfig"]["Outputs"]
    assert model["OutputName"] == contract.PROCESSING_OUTPUT_MODEL
    assert report == {"OutputName": contract.PROCESSING_OUTPUT_REPORT, "AppManaged": False,
                      "S3Output": {"S3Uri": "s3://b/runs/j/report", "LocalPath": contract.CONTAINER_REPORT_DIR,
                                   "S3UploadMode": "EndOfJob"}}
    args = req["AppSpecification"]["ContainerArguments"]
    assert args[-4:] == [contract.REPORT_FLAG, f"{contract.CONTAINER_REPORT_DIR}/{contract.REPORT_FILENAME}",
                         contract.RESULT_JSON_FLAG, f"{contract.CONTAINER_REPORT_DIR}/{contract.RESULT_FILENAME}"]
    assert f"{contract.DEFAULT_OPT_ML_ROOT}/processing/output/report" == contract.CONTAINER_REPORT_DIR


def test_report_channel_s3_direct_is_written_by_the_container() -> None:
    req = build_create_processing_job_request(spec(s3_direct=True, report_s3_uri="s3://b/runs/j/report/"))
    assert "ProcessingOutputConfig" not in req
    assert req["AppSpecification"]["ContainerArguments"][-4:] == [
        contract.REPORT_FLAG, "s3://b/runs/j/report/report.md",
        contract.RESULT_JSON_FLAG, "s3://b/runs/j/report/result.json"]


@pytest.mark.parametrize("report", ["s3://b/out/", "s3://b/out", "s3://b/out/report"])
def test_report_channel_inside_the_output_prefix_is_refused(report: str) -> None:
    with pytest.raises(InvalidInputError, match="beside the model's output prefix"):
        build_create_processing_job_request(spec(report_s3_uri=report))
    build_create_processing_job_request(spec(report_s3_uri="s3://b/out-report"))  # a sibling is fine


@pytest.mark.parametrize("s3_direct", [False, True])
def test_container_arguments_are_accepted_by_the_repack_cli(s3_direct: bool) -> None:
    s = spec(hyperparameters_s3_uri="s3://b/in/hp.json", s3_direct=s3_direct, report_s3_uri="s3://b/report")
    req = build_create_processing_job_request(s)
    argv = [*req["AppSpecification"]["ContainerEntrypoint"][1:], *req["AppSpecification"]["ContainerArguments"]]
    args = cli.build_parser().parse_args(argv)
    assert args.command == contract.REPACK_COMMAND
    if s3_direct:
        assert args.model == s.model_s3_uri
        assert args.hyperparameters == s.hyperparameters_s3_uri
        assert args.output_uri == s.output_s3_uri
        assert "ProcessingInputs" not in req and "ProcessingOutputConfig" not in req
        assert (args.report, args.result_json) == ("s3://b/report/report.md", "s3://b/report/result.json")
    else:
        assert args.model == contract.CONTAINER_MODEL_DIR
        assert args.hyperparameters == contract.CONTAINER_CONFIG_DIR
        assert args.output_dir == contract.CONTAINER_OUTPUT_DIR
        assert args.report == f"{contract.CONTAINER_REPORT_DIR}/report.md"
        assert args.result_json == f"{contract.CONTAINER_REPORT_DIR}/result.json"


def test_request_full_options() -> None:
    req = build_create_processing_job_request(spec(
        instance_type="ml.c5.xlarge", instance_count=2, volume_size_gb=100, max_runtime_seconds=3600,
        volume_kms_key_id="vol-key", output_kms_key_id="out-key", subnets=["subnet-1"],
        security_group_ids=["sg-1"], enable_network_isolation=True,
        enable_inter_container_traffic_encryption=True, environment={"A": "1"}, tags={"team": "ml"},
    ))
    assert req["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "vol-key"
    assert req["ProcessingOutputConfig"]["KmsKeyId"] == "out-key"
    assert req["NetworkConfig"] == {
        "EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]},
    }
    assert req["Environment"] == {"A": "1"}
    assert req["Tags"] == [{"Key": "team", "Value": "ml"}]


@pytest.mark.parametrize(("kw", "needle"), [
    ({"role_arn": "not-an-arn"}, "invalid role ARN"),
    ({"model_s3_uri": "/local/model.tar.gz"}, "must be an s3:// URI"),
    ({"report_s3_uri": "/local/report"}, "report must be an s3:// URI"),
    ({"subnets": ["subnet-1"]}, "both subnets and security group"),
    ({"s3_direct": True, "enable_network_isolation": True}, "network isolation"),
    ({"instance_count": 0}, "instance_count"),
    ({"max_runtime_seconds": 0}, "max_runtime_seconds"),
    ({"job_name": "bad_name"}, "invalid job name"),
])
def test_spec_validation(kw: dict, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        build_create_processing_job_request(spec(**kw))


def test_output_model_uri() -> None:
    assert output_model_uri(spec(output_s3_uri="s3://b/out/")) == "s3://b/out/model.tar.gz"
    assert output_model_uri(spec(output_s3_uri="s3://b/out")) == "s3://b/out/model.tar.gz"
