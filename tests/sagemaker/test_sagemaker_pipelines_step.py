"""pipelines_step: a SageMaker Pipelines definition built with the real SDK carries the launcher's request.

Every test builds a real ``Pipeline`` definition offline with whichever SDK major is installed: marker
``sagemaker_sdk``, deselected by default; ``.ci/sagemaker-sdk.sh 3`` and ``.ci/sagemaker-sdk.sh 2`` run them in a
venv of their own with SDK v3, then v2 (the SDK is heavy: the ``[test]`` extra leaves it out; what needs no SDK is
in ``test_pipelines_step_without_sdk.py``). Building a definition makes no AWS call: the SDK needs a region, not
credentials (conftest sets fake ones and disables the instance metadata lookup), and
``_offline`` fails any connection beyond 127.0.0.1.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import runpy
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dummy_training import contract
from dummy_training.errors import InvalidInputError
from dummy_training.sagemaker import pipelines_step, processing_job
from dummy_training.sagemaker.pipelines_step import model_s3_uri, output_s3_uri, processing_step, step_from_request

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "sagemaker_pipeline.py"
ROLE = "arn:aws:iam::123456789012:role/dummy-training"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:1"
MAJOR = pipelines_step.installed_sdk_major()
NO_SDK = "no SageMaker Python SDK: this file runs in .ci/sagemaker-sdk.sh's venv (pytest -m sagemaker_sdk)"

pytestmark = pytest.mark.sagemaker_sdk

#: every JobSettings field the request can carry, none at its default
ALL_FIELDS: dict[str, Any] = {
    "instance_type": "ml.c5.xlarge", "instance_count": 2, "volume_size_gb": 64, "max_runtime_seconds": 900,
    "volume_kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/volume",
    "output_kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/output",
    "subnets": ["subnet-1", "subnet-2"], "security_group_ids": ["sg-1"],
    "enable_inter_container_traffic_encryption": True,
    "environment": {"A": "1", contract.FSYNC_ENV: "1"}, "tags": {"team": "ml", "cost-center": "42"},
}
#: the SDK's defaults file as a user might have it: every key here would change the job
SDK_DEFAULTS_YAML = """\
SchemaVersion: '1.0'
SageMaker:
  ProcessingJob:
    NetworkConfig:
      EnableNetworkIsolation: true
    ProcessingOutputConfig:
      KmsKeyId: from-sdk-defaults
    Tags:
      - Key: from-sdk-defaults
        Value: x
"""


@dataclass(frozen=True)
class Kit:
    """The installed SDK major's pipeline classes, and one session without SDK defaults shared by the tests
    (making a session costs the SDK about a second)."""

    parameter_string: Any
    pipeline: Any
    pipeline_session: Any
    session: Any


_KITS: list[Kit] = []


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No connection beyond 127.0.0.1; no SDK defaults file from this machine (the SDK reads them when a
    PipelineSession is made without ``sagemaker_config``)."""
    connect = socket.socket.connect

    def local_only(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {address} while building a pipeline definition")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    no_defaults = tmp_path / "sagemaker-config.yaml"
    no_defaults.write_text("")  # an empty file: no defaults, and no schema validation at each lookup (slow)
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(no_defaults))
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(no_defaults))


@pytest.fixture
def kit() -> Kit:
    assert MAJOR is not None, NO_SDK
    if not _KITS:  # made in the first test, under conftest's fake AWS environment
        if MAJOR == 3:
            from sagemaker.core.workflow.parameters import ParameterString
            from sagemaker.core.workflow.pipeline_context import PipelineSession
            from sagemaker.mlops.workflow.pipeline import Pipeline
        else:
            from sagemaker.workflow.parameters import ParameterString
            from sagemaker.workflow.pipeline import Pipeline
            from sagemaker.workflow.pipeline_context import PipelineSession
        _KITS.append(Kit(ParameterString, Pipeline, PipelineSession, pipelines_step.pipeline_session()))
    return _KITS[0]


def _definition(kit: Kit, steps: list[Any], parameters: list[Any] = ()) -> dict[str, Any]:
    pipeline = kit.pipeline(name="dummy-training", parameters=list(parameters), steps=steps,
                            sagemaker_session=kit.session)
    return json.loads(pipeline.definition())


def _steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Name"]: s for s in definition["Steps"]}


def _launchers_request(*, model: str, output: str, hyperparameters: str | None = None, role: str = ROLE,
                       image: str = IMAGE, variables: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The KFP launcher's CreateProcessingJob request as a pipeline definition states it: ``variables`` maps a
    URI to the pipeline variable that replaces it; SageMaker Pipelines names the job (no ProcessingJobName);
    a NetworkConfig states EnableNetworkIsolation (the API's default, False, when the request has none)."""
    request = processing_job.build_create_processing_job_request(processing_job.ProcessingJobSpec(
        job_name="launcher-job", role_arn=role, image_uri=image, model_s3_uri=model, output_s3_uri=output,
        hyperparameters_s3_uri=hyperparameters, **fields))
    request.pop("ProcessingJobName")
    if "NetworkConfig" in request:
        request["NetworkConfig"].setdefault("EnableNetworkIsolation", False)
    return _replace(request, {uri: variable.expr for uri, variable in (variables or {}).items()})


def _replace(value: Any, exprs: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return exprs.get(value, value)
    if isinstance(value, list):
        return [_replace(v, exprs) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, exprs) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------- the step's arguments
@pytest.mark.parametrize("s3_direct", [False, True], ids=["staged", "s3_direct"])
def test_the_definition_carries_the_launchers_request(kit: Kit, s3_direct: bool) -> None:
    model = kit.parameter_string("ModelS3Uri", default_value="s3://b/m/model.tar.gz")
    hyperparameters = kit.parameter_string("HyperparametersS3Uri", default_value="s3://b/h/hyperparameters.json")
    output = kit.parameter_string("OutputS3Uri", default_value="s3://b/out")
    step = processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri=model,
                           hyperparameters_s3_uri=hyperparameters, output_s3_uri=output, s3_direct=s3_direct,
                           step_kwargs={"display_name": "Repack the model", "description": "dummy training"},
                           **ALL_FIELDS)
    definition = _definition(kit, [step], [model, hyperparameters, output])

    (got,) = definition["Steps"]
    assert (got["Name"], got["Type"], got["DisplayName"], got["Description"]) == (
        "Repack", "Processing", "Repack the model", "dummy training")
    # the same variables stand where the launcher has URIs
    uris = {"s3://v/model.tar.gz": model, "s3://v/hyperparameters.json": hyperparameters, "s3://v/out": output}
    expected = _launchers_request(model="s3://v/model.tar.gz", hyperparameters="s3://v/hyperparameters.json",
                                  output="s3://v/out", variables=uris, s3_direct=s3_direct, **ALL_FIELDS)
    assert got["Arguments"] == expected  # every field: image, entrypoint, arguments, inputs, output, role, ...

    args = got["Arguments"]
    assert args["AppSpecification"]["ContainerEntrypoint"] == list(contract.CONTAINER_ENTRYPOINT)
    assert args["ProcessingResources"]["ClusterConfig"] == {
        "InstanceType": "ml.c5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 64,
        "VolumeKmsKeyId": ALL_FIELDS["volume_kms_key_id"]}
    assert args["NetworkConfig"] == {"EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": True,
                                     "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1", "subnet-2"]}}
    assert args["Environment"] == {"A": "1", contract.FSYNC_ENV: "1"}
    assert args["Tags"] == [{"Key": "team", "Value": "ml"}, {"Key": "cost-center", "Value": "42"}]
    assert args["StoppingCondition"] == {"MaxRuntimeInSeconds": 900}
    container_args = args["AppSpecification"]["ContainerArguments"]
    if s3_direct:
        assert "ProcessingInputs" not in args and "ProcessingOutputConfig" not in args
        assert container_args == [contract.MODEL.flag, model.expr, contract.OUTPUT_URI.flag, output.expr,
                                  contract.HYPERPARAMETERS.flag, hyperparameters.expr]
    else:
        inputs = {i["InputName"]: i["S3Input"] for i in args["ProcessingInputs"]}
        assert inputs[contract.PROCESSING_INPUT_MODEL]["S3Uri"] == model.expr
        assert inputs[contract.PROCESSING_INPUT_MODEL]["LocalPath"] == contract.CONTAINER_MODEL_DIR
        assert inputs[contract.PROCESSING_INPUT_HYPERPARAMETERS]["S3Uri"] == hyperparameters.expr
        assert inputs[contract.PROCESSING_INPUT_HYPERPARAMETERS]["LocalPath"] == contract.CONTAINER_CONFIG_DIR
        (out,) = args["ProcessingOutputConfig"]["Outputs"]
        assert out["OutputName"] == contract.PROCESSING_OUTPUT_MODEL
        assert out["S3Output"]["S3Uri"] == output.expr
        assert out["S3Output"]["LocalPath"] == contract.CONTAINER_OUTPUT_DIR
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == ALL_FIELDS["output_kms_key_id"]
        assert container_args[container_args.index(contract.OUTPUT_DIR.flag) + 1] == contract.CONTAINER_OUTPUT_DIR


@pytest.mark.parametrize(("s3_direct", "fields"), [
    (False, {}),
    (True, {}),
    (False, {"enable_network_isolation": True}),
    (False, {"enable_inter_container_traffic_encryption": True}),
    (False, {"report_s3_uri": "s3://b/report"}),  # the job's own report channel, as the launchers ask for it
    (True, {"report_s3_uri": "s3://b/report"}),
], ids=["staged-defaults", "s3_direct-defaults", "network-isolation", "traffic-encryption-only", "staged-report",
        "s3_direct-report"])
def test_plain_uris_and_defaults_give_the_launchers_request_and_nothing_more(
        kit: Kit, s3_direct: bool, fields: dict[str, Any]) -> None:
    step = processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri="s3://b/m/model.tar.gz",
                           output_s3_uri="s3://b/out", s3_direct=s3_direct, sagemaker_session=kit.session, **fields)
    (got,) = _definition(kit, [step])["Steps"]
    assert got["Arguments"] == _launchers_request(model="s3://b/m/model.tar.gz", output="s3://b/out",
                                                  s3_direct=s3_direct, **fields)


def test_a_step_property_can_be_the_model(kit: Kit) -> None:
    first = processing_step("First", role_arn=ROLE, image_uri=IMAGE, model_s3_uri="s3://b/m/model.tar.gz",
                            output_s3_uri="s3://b/first", sagemaker_session=kit.session)
    second = processing_step("Second", role_arn=ROLE, image_uri=IMAGE, model_s3_uri=output_s3_uri(first),
                             output_s3_uri="s3://b/second", s3_direct=True, sagemaker_session=kit.session)
    steps = _steps(_definition(kit, [first, second]))
    property_expr = {"Get": f"Steps.First.ProcessingOutputConfig.Outputs['{contract.PROCESSING_OUTPUT_MODEL}']"
                            ".S3Output.S3Uri"}
    assert steps["Second"]["Arguments"]["AppSpecification"]["ContainerArguments"][1] == property_expr


# ------------------------------------------------------------------------------------- downstream
@pytest.mark.parametrize("s3_direct", [False, True], ids=["staged", "s3_direct"])
def test_a_downstream_step_takes_the_output_property(kit: Kit, s3_direct: bool) -> None:
    output = kit.parameter_string("OutputS3Uri", default_value="s3://b/out")
    repack = processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri="s3://b/m/model.tar.gz",
                             output_s3_uri=output, s3_direct=s3_direct, sagemaker_session=kit.session)
    uri = output_s3_uri(repack)
    # a packaging step: the same image, the repacked model as its input
    downstream = step_from_request("Package", {
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "-m", "tarfile", "-l"],
                             "ContainerArguments": ["/opt/ml/processing/input/repacked/model.tar.gz"]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "ProcessingInputs": [processing_job._s3_input("repacked", uri, "/opt/ml/processing/input/repacked")],
    }, sagemaker_session=kit.session)
    steps = _steps(_definition(kit, [repack, downstream], [output]))

    if s3_direct:  # where the launcher reads it too: the argument after --output-uri
        position = steps["Repack"]["Arguments"]["AppSpecification"]["ContainerArguments"].index(
            contract.OUTPUT_URI.flag) + 1
        expected = {"Get": f"Steps.Repack.AppSpecification.ContainerArguments[{position}]"}
    else:
        expected = {"Get": f"Steps.Repack.ProcessingOutputConfig.Outputs['{contract.PROCESSING_OUTPUT_MODEL}']"
                           ".S3Output.S3Uri"}
    assert uri.expr == expected
    (package_input,) = steps["Package"]["Arguments"]["ProcessingInputs"]
    assert package_input["S3Input"]["S3Uri"] == expected
    # SageMaker Pipelines orders steps by the properties they read: the repack step comes first
    assert "DependsOn" not in steps["Package"]


@pytest.mark.parametrize(("s3_direct", "output", "expected"), [
    (False, "s3://b/out", ("/", "ProcessingOutputConfig.Outputs['model'].S3Output.S3Uri")),
    (False, "s3://b/out/", ("", "ProcessingOutputConfig.Outputs['model'].S3Output.S3Uri")),
    (True, "s3://b/out", ("/", "AppSpecification.ContainerArguments[{i}]")),
    (True, "s3://b/out/repacked.tar.gz", (None, "AppSpecification.ContainerArguments[{i}]")),
])
def test_model_s3_uri_is_the_archive_itself(kit: Kit, s3_direct: bool, output: str, expected: tuple) -> None:
    repack = processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri="s3://b/m/model.tar.gz",
                             output_s3_uri=output, s3_direct=s3_direct, sagemaker_session=kit.session)
    package = step_from_request("Package", {
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["true"], "ContainerArguments": []},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "ProcessingInputs": [processing_job._s3_input("repacked", model_s3_uri(repack),
                                                      "/opt/ml/processing/input/repacked")],
    }, sagemaker_session=kit.session)
    steps = _steps(_definition(kit, [repack, package]))
    arguments = steps["Repack"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    index = arguments.index(contract.OUTPUT_URI.flag) + 1 if s3_direct else None
    prop = {"Get": "Steps.Repack." + expected[1].format(i=index)}
    got = steps["Package"]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    separator = expected[0]
    assert got == (prop if separator is None else
                   {"Std:Join": {"On": separator, "Values": [prop, contract.MODEL_FILENAME]}})
    # and as the job writes it: <output>/model.tar.gz (staged, s3_direct prefix), or the object named
    if separator is not None:
        assert output.rstrip("/") + "/" + contract.MODEL_FILENAME == (output + separator + contract.MODEL_FILENAME)


def test_output_s3_uri_of_a_foreign_step_is_an_error(kit: Kit) -> None:
    other = step_from_request("Other", {
        "RoleArn": ROLE, "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["true"],
                                              "ContainerArguments": ["--output-uri"]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600}}, sagemaker_session=kit.session)
    with pytest.raises(InvalidInputError, match="no dummy-training model output"):
        output_s3_uri(other)


# ------------------------------------------------------------------------------------- sessions, validation
def test_the_steps_own_session_ignores_the_sdk_defaults_a_given_session_applies_them(
        kit: Kit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    defaults = tmp_path / "config.yaml"
    defaults.write_text(SDK_DEFAULTS_YAML)
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(defaults))
    kwargs = {"role_arn": ROLE, "image_uri": IMAGE, "model_s3_uri": "s3://b/m/model.tar.gz",
              "output_s3_uri": "s3://b/out"}
    own = processing_step("Own", **kwargs)
    given = processing_step("Given", sagemaker_session=kit.pipeline_session(), **kwargs)
    steps = _steps(_definition(kit, [own, given]))

    assert steps["Own"]["Arguments"] == _launchers_request(model="s3://b/m/model.tar.gz", output="s3://b/out")
    applied = steps["Given"]["Arguments"]
    assert applied["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert applied["ProcessingOutputConfig"]["KmsKeyId"] == "from-sdk-defaults"
    assert {"Key": "from-sdk-defaults", "Value": "x"} in applied["Tags"]


def test_a_session_that_would_start_jobs_is_refused(kit: Kit) -> None:
    with pytest.raises(InvalidInputError, match="must be a .*PipelineSession"):
        processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri="s3://b/m", output_s3_uri="s3://b/o",
                        sagemaker_session=object())


@pytest.mark.parametrize(("field", "value", "message"), [
    ("model_s3_uri", "/data/model.tar.gz", "model must be an s3:// URI"),
    ("output_s3_uri", "./out", "output must be an s3:// URI"),
    ("hyperparameters_s3_uri", "hyperparameters.json", "hyperparameters must be an s3:// URI"),
    ("role_arn", "dummy-training", "invalid role ARN"),
])
def test_plain_values_are_validated_like_the_launchers(kit: Kit, field: str, value: str, message: str) -> None:
    kwargs = {"role_arn": ROLE, "image_uri": IMAGE, "model_s3_uri": "s3://b/m", "output_s3_uri": "s3://b/o",
              field: value}
    with pytest.raises(InvalidInputError, match=message):
        processing_step("Repack", **kwargs)


def test_s3_direct_with_network_isolation_is_refused(kit: Kit) -> None:
    with pytest.raises(InvalidInputError, match="cannot run with network isolation"):
        processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri="s3://b/m", output_s3_uri="s3://b/o",
                        s3_direct=True, enable_network_isolation=True)


# ------------------------------------------------------------------------------------- which SDK
def test_the_detected_major_is_the_installed_distributions() -> None:
    assert MAJOR is not None, NO_SDK
    assert int(importlib.metadata.version("sagemaker").split(".")[0]) == MAJOR


def _fresh_python(code: str, tmp_path: Path, *, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter (the SDK not yet imported) with this process's AWS isolation."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HOME=str(tmp_path), SAGEMAKER_SUPPRESS_V2_WARNING="1")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)


def test_without_a_region_the_error_says_what_to_set(tmp_path: Path) -> None:
    code = ("from dummy_training.errors import RuntimeIOError\n"
            "from dummy_training.sagemaker.pipelines_step import processing_step\n"
            "try:\n"
            f"    processing_step('Repack', role_arn={ROLE!r}, image_uri='img:1', model_s3_uri='s3://b/m',"
            " output_s3_uri='s3://b/o')\n"
            "except RuntimeIOError as exc:\n"
            "    print('ERROR', exc)\n")
    proc = _fresh_python(code, tmp_path, unset=("AWS_DEFAULT_REGION", "AWS_REGION"))
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR")]
    assert "needs an AWS region" in line and "AWS_DEFAULT_REGION" in line


# ------------------------------------------------------------------------- the docs example (docs/sagemaker.md)
@pytest.mark.skipif(MAJOR != 3, reason="the docs example is written for the SDK v3 API")
def test_the_readme_example_defines_the_launchers_request_offline(capsys: pytest.CaptureFixture[str]) -> None:
    # as a script, here (the SDK is imported already): region and fake credentials from conftest, no metadata
    # lookup, no SDK defaults files, no connection beyond 127.0.0.1 (_offline)
    namespace = runpy.run_path(str(EXAMPLE), run_name="__main__")
    definition = json.loads(capsys.readouterr().out)
    assert definition == json.loads(namespace["pipeline"].definition())
    params = {p["Name"]: p for p in definition["Parameters"]}
    steps = _steps(definition)

    def get(name: str) -> dict[str, str]:
        return {"Get": f"Parameters.{name}"}

    expected = _launchers_request(
        model=params["ModelS3Uri"]["DefaultValue"], output=params["OutputS3Uri"]["DefaultValue"],
        hyperparameters=params["HyperparametersS3Uri"]["DefaultValue"], role=namespace["ROLE"],
        image=namespace["IMAGE"], instance_type="ml.m5.xlarge")
    expected = _replace(expected, {params[n]["DefaultValue"]: get(n) for n in params})
    assert steps["Repack"]["Arguments"] == expected
    (checked,) = steps["Check"]["Arguments"]["ProcessingInputs"]
    assert checked["S3Input"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [
        {"Get": f"Steps.Repack.ProcessingOutputConfig.Outputs['{contract.PROCESSING_OUTPUT_MODEL}'].S3Output.S3Uri"},
        contract.MODEL_FILENAME]}}  # the model.tar.gz object itself, no Join written by the user
    assert steps["Check"]["Arguments"]["AppSpecification"]["ImageUri"] == \
        steps["Repack"]["Arguments"]["AppSpecification"]["ImageUri"]
