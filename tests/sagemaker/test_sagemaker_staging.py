"""staging.stage_inputs against moto's S3 server: checks before uploads, idempotent re-upload, naming."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dummy_training import contract
from dummy_training.errors import InputNotFoundError, InvalidInputError
from dummy_training.sagemaker import staging


def _count_puts(s3) -> list[str]:  # noqa: ANN001
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.PutObject", lambda **kw: calls.append("PutObject"))
    s3.meta.events.register("before-call.s3.CreateMultipartUpload", lambda **kw: calls.append("Multipart"))
    s3.meta.events.register("before-call.s3.CopyObject", lambda **kw: calls.append("CopyObject"))
    return calls


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(uri: str) -> str:
    return uri.split("/", 3)[3]


def test_local_model_dir_and_inline_json_are_uploaded_at_contract_names(s3, bucket: str, tmp_path: Path) -> None:
    """Staged keys are named by the content's SHA-256 (under the contract's file names), so the request names
    what is staged."""
    (tmp_path / contract.MODEL_FILENAME).write_bytes(b"model-bytes")
    prefix = f"s3://{bucket}/staging/job-1"
    staged = staging.stage_inputs(s3, model=str(tmp_path), hyperparameters=None,
                                  hyperparameters_json='{"epochs": 3}', staging_prefix=prefix)
    hp_body = b'{\n  "epochs": 3\n}\n'
    assert staged.model_s3_uri == f"{prefix}/input/model/sha256-{_sha(b'model-bytes')}/model.tar.gz"
    assert staged.hyperparameters_s3_uri == f"{prefix}/input/config/sha256-{_sha(hp_body)}/hyperparameters.json"
    body = s3.get_object(Bucket=bucket, Key=_key(staged.model_s3_uri))["Body"].read()
    assert body == b"model-bytes"
    hp = s3.get_object(Bucket=bucket, Key=_key(staged.hyperparameters_s3_uri))["Body"].read()
    assert hp == hp_body and json.loads(hp) == {"epochs": 3}


def test_plan_makes_no_call_and_names_the_content(bucket: str, tmp_path: Path) -> None:
    """plan_inputs needs no client: the same file and JSON give the same URIs, another file another URI; the same
    object written with other key order or spacing is the same hyperparameters."""
    model = tmp_path / contract.MODEL_FILENAME
    model.write_bytes(b"a")
    prefix = f"s3://{bucket}/p"
    one = staging.plan_inputs(model=str(model), hyperparameters=None, hyperparameters_json='{"b": 1, "a": 2}',
                              staging_prefix=prefix)
    two = staging.plan_inputs(model=str(tmp_path), hyperparameters=None, hyperparameters_json='{"a":2,"b":1}',
                              staging_prefix=prefix)
    assert one.staged() == two.staged()
    model.write_bytes(b"b")
    three = staging.plan_inputs(model=str(model), hyperparameters=None, hyperparameters_json='{"a": 2, "b": 1}',
                                staging_prefix=prefix)
    assert three.model.uri != one.model.uri and three.hyperparameters == one.hyperparameters
    copied = staging.plan_inputs(model=f"s3://{bucket}/m/bert.tar.gz", hyperparameters=f"s3://{bucket}/c/",
                                 hyperparameters_json=None, staging_prefix=prefix)
    assert copied.model.kind == staging.S3_COPY and copied.model.uri.endswith("/model.tar.gz")
    assert copied.hyperparameters == staging.PlannedInput(
        "hyperparameters", staging.S3_IN_PLACE, f"s3://{bucket}/c/hyperparameters.json",
        f"s3://{bucket}/c/hyperparameters.json", check_json=True)


def test_retry_does_not_upload_an_identical_model_again(s3, bucket: str, tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"x" * 1000)
    prefix = f"s3://{bucket}/p"
    staging.stage_inputs(s3, model=str(model), hyperparameters=None, hyperparameters_json=None, staging_prefix=prefix)
    calls = _count_puts(s3)
    staging.stage_inputs(s3, model=str(model), hyperparameters=None, hyperparameters_json=None, staging_prefix=prefix)
    assert calls == []
    model.write_bytes(b"y" * 1000)  # same size, different content: uploaded again
    staging.stage_inputs(s3, model=str(model), hyperparameters=None, hyperparameters_json=None, staging_prefix=prefix)
    assert calls == ["PutObject"]
    key = f"p/input/model/sha256-{_sha(b'y' * 1000)}/model.tar.gz"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"y" * 1000


@pytest.mark.parametrize("metadata", [{}, {staging.STAGED_SHA256_META: _sha(b"z" * 1000)},
                                      {staging.STAGED_SHA256_META: "not-a-digest"}],
                         ids=["no-sha256", "its-own-sha256", "a-bad-sha256"])
def test_an_object_of_the_same_size_at_the_key_is_replaced_unless_it_carries_our_sha256(
        s3, bucket: str, tmp_path: Path, metadata: dict[str, str]) -> None:
    """Only an object labelled with our file's SHA-256 is ours: another one of the same size at the staged key
    (put there by hand, by another tool, or with no label) is overwritten, so the job reads our model."""
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"x" * 1000)
    prefix = f"s3://{bucket}/p"
    key = f"p/input/model/sha256-{_sha(b'x' * 1000)}/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=b"z" * 1000, Metadata=metadata)
    calls = _count_puts(s3)
    staged = staging.stage_inputs(s3, model=str(model), hyperparameters=None, hyperparameters_json=None,
                                  staging_prefix=prefix)
    assert _key(staged.model_s3_uri) == key
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"x" * 1000  # what the job reads
    assert got["Metadata"] == {staging.STAGED_SHA256_META: _sha(b"x" * 1000)}
    assert calls == ["PutObject"]
    calls.clear()  # now it is ours: a retry uploads nothing
    staging.stage_inputs(s3, model=str(model), hyperparameters=None, hyperparameters_json=None, staging_prefix=prefix)
    assert calls == []


def test_s3_model_named_model_tar_gz_is_used_in_place(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/a/model.tar.gz", Body=b"m")
    calls = _count_puts(s3)
    staged = staging.stage_inputs(s3, model=f"s3://{bucket}/models/a/", hyperparameters=None,
                                  hyperparameters_json=None, staging_prefix=f"s3://{bucket}/p")
    assert staged == staging.StagedInputs(f"s3://{bucket}/models/a/model.tar.gz", None)
    assert calls == []


def test_s3_inputs_with_other_names_are_copied_to_contract_names(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/bert-v2.tar.gz", Body=b"m")
    s3.put_object(Bucket=bucket, Key="cfg/params.json", Body=b'{"lr": 0.1}')
    staged = staging.stage_inputs(s3, model=f"s3://{bucket}/models/bert-v2.tar.gz",
                                  hyperparameters=f"s3://{bucket}/cfg/params.json", hyperparameters_json=None,
                                  staging_prefix=f"s3://{bucket}/p")
    source = _sha(f"s3://{bucket}/models/bert-v2.tar.gz".encode())[:16]
    assert staged.model_s3_uri == f"s3://{bucket}/p/input/model/s3-{source}/model.tar.gz"
    source = _sha(f"s3://{bucket}/cfg/params.json".encode())[:16]
    assert staged.hyperparameters_s3_uri == f"s3://{bucket}/p/input/config/s3-{source}/hyperparameters.json"
    assert s3.get_object(Bucket=bucket, Key=_key(staged.model_s3_uri))["Body"].read() == b"m"


def test_s3_direct_uses_s3_inputs_where_they_are(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/bert-v2.tar.gz", Body=b"m")
    calls = _count_puts(s3)
    staged = staging.stage_inputs(s3, model=f"s3://{bucket}/models/bert-v2.tar.gz", hyperparameters=None,
                                  hyperparameters_json=None, staging_prefix=f"s3://{bucket}/p", s3_direct=True)
    assert staged.model_s3_uri == f"s3://{bucket}/models/bert-v2.tar.gz"
    assert calls == []


def test_missing_s3_model_names_the_uri(s3, bucket: str) -> None:
    with pytest.raises(InputNotFoundError, match=f"s3://{bucket}/nope/model.tar.gz"):
        staging.stage_inputs(s3, model=f"s3://{bucket}/nope/model.tar.gz", hyperparameters=None,
                             hyperparameters_json=None, staging_prefix=f"s3://{bucket}/p")


def test_missing_bucket_is_not_found(s3) -> None:
    with pytest.raises(InputNotFoundError):
        staging.stage_inputs(s3, model="s3://dt-no-such-bucket-xyz/model.tar.gz", hyperparameters=None,
                             hyperparameters_json=None, staging_prefix="s3://dt-no-such-bucket-xyz/p")


def test_missing_local_model(s3, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="model.tar.gz"):
        staging.stage_inputs(s3, model=str(tmp_path), hyperparameters=None, hyperparameters_json=None,
                             staging_prefix=f"s3://{bucket}/p")


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", '"a string"'])
def test_inline_json_must_be_an_object_and_nothing_is_uploaded(s3, bucket: str, tmp_path: Path, text: str) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"m")
    calls = _count_puts(s3)
    with pytest.raises(InvalidInputError):
        staging.stage_inputs(s3, model=str(tmp_path), hyperparameters=None, hyperparameters_json=text,
                             staging_prefix=f"s3://{bucket}/p")
    assert calls == []


def test_bad_s3_hyperparameters_json_is_rejected(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=b"m")
    s3.put_object(Bucket=bucket, Key="cfg/hyperparameters.json", Body=b"[]")
    with pytest.raises(InvalidInputError, match="JSON object"):
        staging.stage_inputs(s3, model=f"s3://{bucket}/m/model.tar.gz",
                             hyperparameters=f"s3://{bucket}/cfg/hyperparameters.json", hyperparameters_json=None,
                             staging_prefix=f"s3://{bucket}/p")


def test_local_hyperparameters_file_is_checked_and_uploaded(s3, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"m")
    hp_dir = tmp_path / "hp"
    hp_dir.mkdir()
    (hp_dir / "hyperparameters.json").write_text('{"a": "1"}')
    staged = staging.stage_inputs(s3, model=str(tmp_path), hyperparameters=str(hp_dir), hyperparameters_json=None,
                                  staging_prefix=f"s3://{bucket}/p")
    digest = _sha(b'{"a": "1"}')
    assert staged.hyperparameters_s3_uri == f"s3://{bucket}/p/input/config/sha256-{digest}/hyperparameters.json"
    (hp_dir / "hyperparameters.json").write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInputError):
        staging.stage_inputs(s3, model=str(tmp_path), hyperparameters=str(hp_dir), hyperparameters_json=None,
                             staging_prefix=f"s3://{bucket}/p")


def test_both_hyperparameter_sources_is_refused(s3, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        staging.stage_inputs(s3, model=str(tmp_path), hyperparameters=str(tmp_path), hyperparameters_json="{}",
                             staging_prefix=f"s3://{bucket}/p")


def test_large_model_uses_multipart_and_round_trips(s3, bucket: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "_MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(staging, "_MULTIPART_CHUNK", 5 << 20)
    data = bytes(range(256)) * (11 * 4096)  # 11 MiB
    (tmp_path / "model.tar.gz").write_bytes(data)
    calls = _count_puts(s3)
    staging.stage_inputs(s3, model=str(tmp_path), hyperparameters=None, hyperparameters_json=None,
                         staging_prefix=f"s3://{bucket}/p")
    assert "Multipart" in calls
    assert s3.get_object(Bucket=bucket, Key=f"p/input/model/sha256-{_sha(data)}/model.tar.gz")["Body"].read() == data
