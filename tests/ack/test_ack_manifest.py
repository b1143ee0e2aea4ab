"""The ACK ProcessingJob manifest: valid against the CRD's schema (tests/data/ack/), and the same job as the
SageMaker request."""

from __future__ import annotations

import copy
from typing import Any

import ack_reference
import pytest
import yaml

from dummy_training import contract
from dummy_training.ack import manifest as ack_manifest
from dummy_training.errors import InvalidInputError
from dummy_training.sagemaker.processing_job import ProcessingJobSpec, build_create_processing_job_request

ROLE = "arn:aws:iam::123456789012:role/service-role/SageMakerExecution"
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/dummy-training:0.1.0"


def default_spec(**overrides: Any) -> ProcessingJobSpec:
    kwargs: dict[str, Any] = dict(
        job_name="dummy-training-run1-task2",
        role_arn=ROLE,
        image_uri=IMAGE,
        model_s3_uri="s3://stage-bucket/prefix/job/input/model/model.tar.gz",
        output_s3_uri="s3://out-bucket/models/job/",
        hyperparameters_s3_uri="s3://stage-bucket/prefix/job/input/config/hyperparameters.json",
        report_s3_uri="s3://out-bucket/models/job-report/",  # as the launchers make it: beside the output prefix
    )
    kwargs.update(overrides)
    return ProcessingJobSpec(**kwargs)


def full_spec() -> ProcessingJobSpec:
    return default_spec(
        instance_type="ml.c5.xlarge",
        instance_count=2,
        volume_size_gb=100,
        max_runtime_seconds=3600,
        volume_kms_key_id="arn:aws:kms:us-west-2:123456789012:key/volume-key",
        output_kms_key_id="arn:aws:kms:us-west-2:123456789012:key/output-key",
        subnets=["subnet-0abc", "subnet-0def"],
        security_group_ids=["sg-0123"],
        enable_network_isolation=True,
        enable_inter_container_traffic_encryption=True,
        environment={"LOG_LEVEL": "debug", "My_Var": "x=1"},
        tags={"team": "ml-platform", "CostCenter": "42"},
    )


SPECS = {
    "default": default_spec,
    "no_hyperparameters": lambda: default_spec(hyperparameters_s3_uri=None),
    "no_report": lambda: default_spec(report_s3_uri=None),
    "full": full_spec,
    "s3_direct": lambda: default_spec(s3_direct=True, model_s3_uri="s3://models/any-name.tgz",
                                      output_s3_uri="s3://out-bucket/models/job/model.tar.gz",
                                      subnets=["subnet-1"], security_group_ids=["sg-1"], tags={"a": "b"}),
}


@pytest.fixture(params=sorted(SPECS))
def spec(request: pytest.FixtureRequest) -> ProcessingJobSpec:
    return SPECS[request.param]()


# ------------------------------------------------------------------------------------------ CRD validation
def test_every_generated_manifest_is_valid_against_the_crd_with_unknown_fields_forbidden(spec) -> None:
    manifest = ack_manifest.build_manifest(spec, namespace="kubeflow-user", labels={"team": "ml"},
                                      annotations={"note": "x"})
    assert ack_reference.errors(manifest) == []
    # and what kubectl apply reads back from the YAML is the same document
    assert yaml.safe_load(ack_manifest.manifest_yaml(manifest)) == manifest


def test_hand_written_manifest_is_valid_positive_control() -> None:
    # written by hand, with fields our converter never writes: strict validation does not over-reject
    assert ack_reference.errors(ack_reference.load("processing-job.yaml")) == []


def test_broken_manifest_is_rejected_negative_control() -> None:
    manifest = ack_manifest.build_manifest(full_spec())
    broken = copy.deepcopy(manifest)
    del broken["spec"]["roleARN"]
    broken["spec"]["processingResources"]["clusterConfig"]["instanceCount"] = "2"
    broken["spec"]["appSpecification"]["imageUri"] = broken["spec"]["appSpecification"].pop("imageURI")
    broken["spec"]["networkConfig"]["enableNetworkIsolation"] = "true"
    broken["spec"]["environment"]["N"] = 1
    errs = ack_reference.errors(broken)
    joined = "\n".join(errs)
    assert "'roleARN' is a required property" in joined
    assert "spec/processingResources/clusterConfig/instanceCount: '2' is not of type 'integer'" in errs
    assert "spec/networkConfig/enableNetworkIsolation: 'true' is not of type 'boolean'" in errs
    assert "spec/environment/N: 1 is not of type 'string'" in errs
    assert any("imageUri" in e and "Additional properties" in e for e in errs)
    # Without strictness the misspelt field passes: the API server would silently prune it.
    assert not any("imageUri" in e for e in ack_reference.errors(broken, strict_fields=False))


def test_strict_validation_catches_misplaced_fields() -> None:
    # Fields that exist in the CRD, one level off (mistakes seen in real manifests): stoppingCondition under
    # networkConfig, appManaged under processingOutputConfig, a dataset definition's fields directly in the
    # processing input. Each is valid elsewhere, a real API server silently prunes it here.
    manifest = ack_reference.load("processing-job.yaml")
    spec = manifest["spec"]
    spec["networkConfig"]["stoppingCondition"] = spec.pop("stoppingCondition")
    spec["processingOutputConfig"]["appManaged"] = False
    spec["processingInputs"][1].update(localPath="/opt/ml/processing/input/table", inputMode="File")
    errs = ack_reference.errors(manifest)
    assert len(errs) == 3, errs
    assert any(e.startswith("spec/processingInputs/1:") and "localPath" in e and "inputMode" in e for e in errs)
    assert any(e.startswith("spec/networkConfig:") and "stoppingCondition" in e for e in errs)
    assert any(e.startswith("spec/processingOutputConfig:") and "appManaged" in e for e in errs)
    assert ack_reference.errors(manifest, strict_fields=False) == []


def test_irregular_name_table_matches_crd_field_names() -> None:
    names: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in (node.get("properties") or {}).items():
                names.add(key)
                collect(value)
            collect(node.get("items"))
            collect(node.get("additionalProperties"))

    collect(ack_reference.crd_schema()["properties"]["spec"])
    assert set(ack_manifest.IRREGULAR_NAMES.values()) <= names
    # the irregular names really are irregular: the regular rule would have produced a field the CRD lacks
    for boto, ack in ack_manifest.IRREGULAR_NAMES.items():
        regular = boto[:1].lower() + boto[1:]
        assert regular == ack or regular not in names, (boto, ack)


def test_required_spec_fields_are_always_present(spec) -> None:
    required = ack_reference.crd_schema()["properties"]["spec"]["required"]
    manifest_spec = ack_manifest.build_manifest(spec)["spec"]
    assert set(required) <= set(manifest_spec)


# ----------------------------------------------------------------------------------- the same job, twice
def _assert_same(request: Any, ack: Any, path: str) -> int:
    """Walk the boto3 request and the ACK spec together, matching keys case-insensitively (independent of
    the converter's table). Returns the number of leaves compared."""
    if isinstance(request, dict):
        assert isinstance(ack, dict), path
        if path.endswith("/Environment"):  # a user map: keys are data and must be kept exactly
            assert ack == request, path
            return len(request)
        req = {k.lower(): k for k in request}
        acks = {k.lower(): k for k in ack}
        assert len(req) == len(request) and len(acks) == len(ack), f"case-colliding keys at {path}"
        assert set(req) == set(acks), f"{path}: request has {sorted(request)}, ACK has {sorted(ack)}"
        return sum(_assert_same(request[req[k]], ack[acks[k]], f"{path}/{req[k]}") for k in req)
    if isinstance(request, list):
        assert isinstance(ack, list) and len(ack) == len(request), path
        return sum(_assert_same(r, a, f"{path}[{i}]") for i, (r, a) in enumerate(zip(request, ack, strict=True)))
    assert type(ack) is type(request) and ack == request, f"{path}: {request!r} != {ack!r}"
    return 1


def test_ack_manifest_and_sagemaker_request_describe_the_same_job(spec) -> None:
    request = build_create_processing_job_request(copy.deepcopy(spec))
    manifest = ack_manifest.build_manifest(spec)
    leaves = _assert_same(request, manifest["spec"], "")
    assert leaves >= 12
    # and the shared fields are the contract's
    assert manifest["spec"]["processingJobName"] == spec.job_name
    assert manifest["spec"]["appSpecification"]["containerEntrypoint"] == list(contract.CONTAINER_ENTRYPOINT)


def test_reverse_mapping_through_the_sagemaker_api_model_gives_back_the_request(spec) -> None:
    request = build_create_processing_job_request(copy.deepcopy(spec))
    assert ack_reference.ack_to_request(ack_manifest.build_manifest(spec)["spec"]) == request


def test_full_manifest_fields_spelled_as_ack_spells_them() -> None:
    s = ack_manifest.build_manifest(full_spec())["spec"]
    assert s["roleARN"] == ROLE
    assert s["appSpecification"]["imageURI"] == IMAGE
    cluster = s["processingResources"]["clusterConfig"]
    assert cluster == {"instanceCount": 2, "instanceType": "ml.c5.xlarge", "volumeSizeInGB": 100,
                       "volumeKMSKeyID": "arn:aws:kms:us-west-2:123456789012:key/volume-key"}
    assert s["processingOutputConfig"]["kmsKeyID"] == "arn:aws:kms:us-west-2:123456789012:key/output-key"
    assert s["networkConfig"] == {"enableNetworkIsolation": True, "enableInterContainerTrafficEncryption": True,
                                  "vpcConfig": {"securityGroupIDs": ["sg-0123"],
                                                "subnets": ["subnet-0abc", "subnet-0def"]}}
    assert s["environment"] == {"LOG_LEVEL": "debug", "My_Var": "x=1"}
    assert s["tags"] == [{"key": "team", "value": "ml-platform"}, {"key": "CostCenter", "value": "42"}]
    inputs = {i["inputName"]: i["s3Input"] for i in s["processingInputs"]}
    assert inputs[contract.PROCESSING_INPUT_MODEL]["localPath"] == contract.CONTAINER_MODEL_DIR
    assert inputs[contract.PROCESSING_INPUT_HYPERPARAMETERS]["s3URI"].endswith("hyperparameters.json")
    assert s["stoppingCondition"] == {"maxRuntimeInSeconds": 3600}


def test_s3_direct_manifest_has_no_inputs_or_outputs() -> None:
    s = ack_manifest.build_manifest(SPECS["s3_direct"]())["spec"]
    assert "processingInputs" not in s and "processingOutputConfig" not in s
    args = s["appSpecification"]["containerArguments"]
    assert args[args.index(contract.MODEL.flag) + 1] == "s3://models/any-name.tgz"
    assert args[args.index(contract.REPORT_FLAG) + 1] == "s3://out-bucket/models/job-report/report.md"
    assert args[args.index(contract.RESULT_JSON_FLAG) + 1] == "s3://out-bucket/models/job-report/result.json"


def test_staged_manifest_has_the_report_channel_in_ack_casing() -> None:
    s = ack_manifest.build_manifest(default_spec())["spec"]
    outputs = {o["outputName"]: o["s3Output"] for o in s["processingOutputConfig"]["outputs"]}
    assert outputs[contract.PROCESSING_OUTPUT_REPORT] == {
        "s3URI": "s3://out-bucket/models/job-report/", "localPath": contract.CONTAINER_REPORT_DIR,
        "s3UploadMode": "EndOfJob"}
    args = s["appSpecification"]["containerArguments"]
    assert args[args.index(contract.REPORT_FLAG) + 1] == f"{contract.CONTAINER_REPORT_DIR}/report.md"
    assert set(outputs) == {contract.PROCESSING_OUTPUT_MODEL, contract.PROCESSING_OUTPUT_REPORT}


def test_sagemaker_request_values_are_valid_for_the_sagemaker_api_model(spec) -> None:
    # enums (S3DataType, S3InputMode, S3UploadMode, ...), types and required members, per botocore's model;
    # the walk above shows the ACK manifest carries exactly these values.
    from botocore.validate import validate_parameters

    validate_parameters(build_create_processing_job_request(spec), ack_reference.create_processing_job_shape())


# ------------------------------------------------------------------------------------------------ metadata
def test_metadata_name_namespace_labels_annotations() -> None:
    manifest = ack_manifest.build_manifest(default_spec(), namespace="team-a", labels={"team": "ml"},
                                      annotations={"kfp/run": "abc"})
    assert manifest["apiVersion"] == "sagemaker.services.k8s.aws/v1alpha1"
    assert manifest["kind"] == "ProcessingJob"
    assert manifest["metadata"] == {"name": "dummy-training-run1-task2", "namespace": "team-a",
                                    "labels": {"app.kubernetes.io/name": "dummy-training", "team": "ml"},
                                    "annotations": {"kfp/run": "abc"}}
    assert "namespace" not in ack_manifest.build_manifest(default_spec())["metadata"]


@pytest.mark.parametrize("job_name", ["a", "Job-ABC", "x" * 63, "X" * 63, "a-b--c", "Run1-task2"])
def test_resource_name_is_a_dns1123_label_and_deterministic(job_name: str) -> None:
    name = ack_manifest.resource_name(job_name)
    assert ack_manifest.DNS1123_LABEL_RE.match(name) and len(name) <= 63
    assert name == ack_manifest.resource_name(job_name)
    if job_name == job_name.lower():
        assert name == job_name


def test_resource_names_differing_only_by_case_stay_distinct() -> None:
    assert ack_manifest.resource_name("Job") != ack_manifest.resource_name("job")
    assert ack_manifest.resource_name("Job") != ack_manifest.resource_name("JOB")


def test_invalid_spec_is_refused_before_any_manifest() -> None:
    with pytest.raises(InvalidInputError):
        ack_manifest.build_manifest(default_spec(role_arn="not-an-arn"))
    with pytest.raises(InvalidInputError):
        ack_manifest.build_manifest(default_spec(job_name="bad_name!"))
