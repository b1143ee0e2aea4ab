"""docs/iam/*.json grant every AWS operation the code calls, and no policy grants it by a wildcard action.

Every client the package creates is watched (``aws.CLIENT_HOOKS``, botocore ``before-call``; see
tests/iam_recorder.py) for the whole test session; the tests here first run one of each flow themselves (so the
check holds when this file runs alone), then check every recorded (IAM action, resource) against the policy of
whoever called it: the SageMaker launcher's role, the ACK launcher's, and for the repack's own S3 calls both the
in-pod S3 component's role and the s3_direct job's execution role. A staged job's S3 access is SageMaker's
(not our code's): checked from the request the launcher sends."""

from __future__ import annotations

import fnmatch
import json
import re
import uuid
from pathlib import Path
from typing import Any

import iam_recorder
import pytest
from archives import make_model_archive

from dummy_training import cli, contract
from dummy_training.sagemaker import launcher as sagemaker_launcher
from dummy_training.sagemaker.launcher import LaunchConfig

IAM = Path(__file__).resolve().parent.parent / "docs" / "iam"
ROLE = "arn:aws:iam::123456789012:role/dummy-training-job"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0-root"
POLICY_OF = {"launcher": ["sagemaker-launcher-policy.json"], "ack-launcher": ["ack-launcher-policy.json"],
             "repack": ["s3-component-policy.json", "job-execution-role-s3-direct-policy.json"]}


def policy(name: str) -> dict[str, Any]:
    return json.loads((IAM / name).read_text())


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _pattern(resource: str) -> str:
    """A policy resource with its placeholders (``<bucket>``, ``<account-id>`` ...) matching anything."""
    return re.sub(r"<[a-z-]+>", "*", resource)


def granting(doc: dict[str, Any], action: str, resource: str) -> list[dict[str, Any]]:
    """The Allow statements of ``doc`` granting ``action`` on ``resource`` (IAM's matching: case-insensitive
    actions with wildcards, resources with wildcards)."""
    return [st for st in doc["Statement"] if st["Effect"] == "Allow"
            and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(st["Action"]))
            and any(fnmatch.fnmatchcase(resource, _pattern(r)) for r in _as_list(st["Resource"]))]


def _run_each_flow(s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    """One of each: repack S3 to S3 (inject: UploadPartCopy; report and result to S3), the SageMaker launcher
    (stage a local model and inline JSON, copy an S3 hyperparameters file, create, describe, read logs and the
    job's report, download), `ack manifest --stage`."""
    model = make_model_archive(weights_size=300_000, small_files=2)
    s3.put_object(Bucket=bucket, Key="models/bert.tar.gz", Body=model)
    s3.put_object(Bucket=bucket, Key="cfg/params.json", Body=b'{"epochs": 2}')
    out = f"s3://{bucket}/out"
    assert cli.main(["repack", "--model", f"s3://{bucket}/models/bert.tar.gz", "--hyperparameters-json", "{}",
                     "--output-uri", f"{out}/", "--report", f"{out}/report.md", "--result-json",
                     f"{out}/result.json", "--endpoint-url", moto_endpoint, "--no-progress"]) == 0
    local = tmp_path / "model.tar.gz"
    local.write_bytes(model)
    name = f"iam-{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=bucket, Key=f"runs/{name}/output/model.tar.gz", Body=b"repacked")  # moto runs nothing
    cfg = LaunchConfig(model=str(local), hyperparameters=f"s3://{bucket}/cfg/params.json", role_arn=ROLE,
                       image_uri=IMAGE, s3_prefix=f"s3://{bucket}/runs", job_name=name, region="us-east-1",
                       endpoint_url=moto_endpoint, tags={"team": "ml"}, model_output_dir=str(tmp_path / "dl"))
    sagemaker_launcher.launch(cfg, sleep=lambda _s: None)
    assert cli.main(["ack", "manifest", "--stage", "--model", str(local), "--hyperparameters-json", '{"a": 1}',
                     "--s3-prefix", f"s3://{bucket}/ack", "--role-arn", ROLE, "--image-uri", IMAGE,
                     "--endpoint-url", moto_endpoint, "--job-name", name]) == 0


def test_every_recorded_call_is_granted(s3, bucket: str, moto_endpoint: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    _run_each_flow(s3, bucket, moto_endpoint, tmp_path)
    capsys.readouterr()
    recorded = {owner: set(calls) for owner, calls in iam_recorder.RECORDED.items()}
    seen = {owner: {action for action, _ in calls} for owner, calls in recorded.items()}
    # the flows above made these calls: the check below is not vacuous
    assert {"sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:AddTags", "iam:PassRole",
            "s3:PutObject", "s3:GetObject", "logs:DescribeLogStreams"} <= seen["launcher"]
    assert {"s3:PutObject", "s3:GetObject"} <= seen["ack-launcher"]
    assert {"s3:PutObject", "s3:GetObject"} <= seen["repack"]
    missing = [f"{name}: {action} on {resource} ({owner})"
               for owner, calls in sorted(recorded.items()) for name in POLICY_OF[owner]
               for action, resource in sorted(calls) if not granting(policy(name), action, resource)]
    assert missing == []


def test_pass_role_only_to_sagemaker() -> None:
    (statement,) = granting(policy("sagemaker-launcher-policy.json"), "iam:PassRole", ROLE)
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert not granting(policy("sagemaker-launcher-policy.json"), "iam:PassRole", "arn:aws:iam::123456789012:*")


def test_staged_job_role_grants_what_sagemaker_does_for_the_request(tmp_path: Path) -> None:
    """In a staged job SageMaker downloads the inputs (S3Prefix: ListBucket and GetObject), uploads the outputs,
    pulls the image and writes the logs with the job's role: every one of those for the launcher's request."""
    (tmp_path / contract.MODEL_FILENAME).write_bytes(make_model_archive(weights_size=1000, small_files=1))
    request = sagemaker_launcher.dry_run(LaunchConfig(
        model=str(tmp_path), hyperparameters_json="{}", role_arn=ROLE, image_uri=IMAGE,
        s3_prefix="s3://bkt/dt", job_name="staged"))
    needs: list[tuple[str, str]] = []
    for item in request["ProcessingInputs"]:
        bucket, _, key = item["S3Input"]["S3Uri"][5:].partition("/")
        needs += [("s3:ListBucket", f"arn:aws:s3:::{bucket}"), ("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")]
    for item in request["ProcessingOutputConfig"]["Outputs"]:
        bucket, _, key = item["S3Output"]["S3Uri"][5:].partition("/")
        needs.append(("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}/{contract.MODEL_FILENAME}"))
    registry, _, repository = request["AppSpecification"]["ImageUri"].partition("/")
    account, region = registry.split(".")[0], registry.split(".")[3]
    repo_arn = f"arn:aws:ecr:{region}:{account}:repository/{repository.split(':')[0]}"
    needs += [("ecr:BatchGetImage", repo_arn), ("ecr:GetDownloadUrlForLayer", repo_arn),
              ("ecr:GetAuthorizationToken", "*"),
              ("logs:CreateLogStream", f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs:"
                                       "log-stream:staged/algo-1"),
              ("logs:PutLogEvents", f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs:"
                                    "log-stream:staged/algo-1")]
    doc = policy("job-execution-role-staged-policy.json")
    assert [n for n in needs if not granting(doc, *n)] == []
    trust = policy("job-execution-role-trust-policy.json")["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"


@pytest.mark.parametrize("name", sorted(p.name for p in IAM.glob("*.json")))
def test_policy_documents_are_least_privilege(name: str) -> None:
    """Valid policy documents; no wildcard action; a ``*`` resource only for the actions that take no other."""
    doc = policy(name)
    assert doc["Version"] == "2012-10-17" and doc["Statement"]
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        for action in _as_list(st["Action"]):
            assert re.fullmatch(r"[a-z0-9]+:[A-Za-z]+", action), action  # no "s3:*", no "*"
        if st.get("Resource") == "*":
            assert set(_as_list(st["Action"])) <= {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}, st


def test_irsa_service_account_example() -> None:
    import yaml

    doc = yaml.safe_load((IAM / "irsa-serviceaccount.yaml").read_text())
    assert doc["kind"] == "ServiceAccount" and doc["apiVersion"] == "v1"
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", doc["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])
    trust = policy("irsa-trust-policy.json")["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"]["StringEquals"]["<oidc-provider>:sub"].endswith(":" + doc["metadata"]["name"])
