"""Input resolution: explicit arguments, the contract's search order with labels, and clear not-found errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dummy_training import contract
from dummy_training.errors import InputNotFoundError, InvalidInputError
from dummy_training.step.resolve import (
    parse_hyperparameters,
    resolve_hyperparameters,
    resolve_model,
    resolve_output,
    same_location,
)


@pytest.fixture
def opt_ml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "opt_ml"
    root.mkdir()
    monkeypatch.setenv(contract.OPT_ML_ROOT_ENV, str(root))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return root


def _put(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


MODEL_ORDER = [
    ("input/data/model_artifacts_input/model.tar.gz", contract.LABEL_CHANNEL),
    ("processing/input/model/model.tar.gz", contract.LABEL_PROCESSING),
    ("code/models/model.tar.gz", contract.LABEL_SOURCE),
    ("code/model.tar.gz", contract.LABEL_SOURCE),
]


def test_model_search_order_first_existing_wins(opt_ml: Path) -> None:
    # create all, then remove from the front: each time the next one in order must win
    paths = [_put(opt_ml / rel) for rel, _ in MODEL_ORDER]
    for (rel, label), path in zip(MODEL_ORDER, paths, strict=True):
        res = resolve_model(None)
        assert res.location == str(opt_ml / rel)
        assert res.label == label
        path.unlink()
    cwd_model = _put(Path.cwd() / "model.tar.gz")
    res = resolve_model(None)
    assert (res.location, res.label) == (str(cwd_model), contract.LABEL_SOURCE)


def test_model_missing_names_every_place_searched(opt_ml: Path) -> None:
    with pytest.raises(InputNotFoundError) as info:
        resolve_model(None)
    message = str(info.value)
    for rel, _ in MODEL_ORDER:
        assert str(opt_ml / rel) in message
    assert str(Path.cwd() / "model.tar.gz") in message


def test_model_explicit_file_dir_and_single_archive_in_dir(tmp_path: Path) -> None:
    f = _put(tmp_path / "a" / "model.tar.gz")
    assert resolve_model(str(f)).location == str(f)
    assert resolve_model(str(f.parent)).location == str(f)
    assert resolve_model(str(f)).label == contract.LABEL_FLAG
    other = _put(tmp_path / "b" / "my-model.tgz")
    assert resolve_model(str(other.parent)).location == str(other)


def test_model_dir_with_several_archives_is_ambiguous(tmp_path: Path) -> None:
    _put(tmp_path / "one.tar.gz")
    _put(tmp_path / "two.tar.gz")
    with pytest.raises(InvalidInputError, match="several archives"):
        resolve_model(str(tmp_path))


def test_model_explicit_missing(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="model not found"):
        resolve_model(str(tmp_path / "nope.tar.gz"))
    with pytest.raises(InputNotFoundError, match="no model.tar.gz"):
        resolve_model(str(tmp_path))


def test_model_s3_uri_passes_through() -> None:
    assert resolve_model("s3://bucket/k/model.tar.gz").location == "s3://bucket/k/model.tar.gz"


HP_ORDER = [
    ("input/data/hyperparameters_s3_uri/hyperparameters.json", contract.LABEL_CHANNEL),
    ("processing/input/config/hyperparameters.json", contract.LABEL_PROCESSING),
    ("code/hyperparams/hyperparameters.json", contract.LABEL_SOURCE),
    ("code/hyperparameters.json", contract.LABEL_SOURCE),
]


def test_hyperparameters_search_order(opt_ml: Path) -> None:
    paths = [_put(opt_ml / rel, json.dumps({"i": i}).encode()) for i, (rel, _) in enumerate(HP_ORDER)]
    for i, ((_, label), path) in enumerate(zip(HP_ORDER, paths, strict=True)):
        hp = resolve_hyperparameters(None, None)
        assert hp is not None
        assert json.loads(hp.data) == {"i": i}
        assert hp.label == label
        path.unlink()
    assert resolve_hyperparameters(None, None) is None


def test_hyperparameters_file_and_inline_together_are_refused(tmp_path: Path) -> None:
    f = _put(tmp_path / "hp.json", b'{"from": "file"}')
    with pytest.raises(InvalidInputError, match="not both"):
        resolve_hyperparameters(str(f), '{"from": "inline"}')
    hp = resolve_hyperparameters(None, '{"from": "inline"}')
    assert hp is not None and json.loads(hp.data) == {"from": "inline"} and hp.location == "inline JSON"


def test_hyperparameters_file_and_directory(tmp_path: Path) -> None:
    f = _put(tmp_path / "cfg" / "hyperparameters.json", b'{"lr": 0.1}')
    for given in (str(f), str(f.parent)):
        hp = resolve_hyperparameters(given, None)
        assert hp is not None and hp.data == b'{"lr": 0.1}' and hp.location == str(f)


def test_hyperparameters_explicit_missing_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="hyperparameters not found"):
        resolve_hyperparameters(str(tmp_path / "missing.json"), None)


@pytest.mark.parametrize(("data", "needle"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, got a JSON list"),
    (b'"text"', "must be a JSON object, got a JSON str"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"", "not valid JSON"),
])
def test_hyperparameters_must_be_a_json_object(data: bytes, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        parse_hyperparameters(data, "x")


def test_hyperparameters_bad_file_is_invalid_input(tmp_path: Path) -> None:
    f = _put(tmp_path / "hp.json", b"[1]")
    with pytest.raises(InvalidInputError, match="JSON object"):
        resolve_hyperparameters(str(f), None)


def test_hyperparameters_from_s3(s3, bucket: str, moto_endpoint: str) -> None:  # noqa: ANN001
    s3.put_object(Bucket=bucket, Key="cfg/hyperparameters.json", Body=b'{"epochs": 3}')
    for uri in (f"s3://{bucket}/cfg/hyperparameters.json", f"s3://{bucket}/cfg/"):
        hp = resolve_hyperparameters(uri, None, moto_endpoint)
        assert hp is not None and hp.data == b'{"epochs": 3}'
    with pytest.raises(InputNotFoundError):
        resolve_hyperparameters(f"s3://{bucket}/missing.json", None, moto_endpoint)


def test_output_resolution(opt_ml: Path, tmp_path: Path) -> None:
    assert resolve_output(None, None) == str(opt_ml / "processing/output/model/model.tar.gz")
    assert resolve_output(str(tmp_path), None) == str(tmp_path / "model.tar.gz")
    assert resolve_output(None, "s3://b/out/") == "s3://b/out/model.tar.gz"
    assert resolve_output(None, "s3://b/out") == "s3://b/out/model.tar.gz"
    assert resolve_output(None, "s3://b") == "s3://b/model.tar.gz"
    assert resolve_output(None, "s3://b/x/final.tar.gz") == "s3://b/x/final.tar.gz"
    with pytest.raises(InvalidInputError):
        resolve_output(str(tmp_path), "s3://b/o/")
    with pytest.raises(InvalidInputError):
        resolve_output(None, "/local/path")


def test_same_location(tmp_path: Path) -> None:
    f = _put(tmp_path / "m.tar.gz")
    assert same_location(str(f), str(tmp_path / "." / "m.tar.gz"))
    assert not same_location(str(f), str(tmp_path / "other.tar.gz"))
    assert same_location("s3://b/k", "s3://b/k")
    assert not same_location("s3://b/k", "s3://b/k2")
