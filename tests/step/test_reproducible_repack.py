"""Reproducible output end to end: run_repack twice gives the same bytes, local and S3 to S3 (moto's HTTP server)
alike, with either scanner and whatever the clock; the result says how the injected member's mtime was chosen."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from archives import HYPERPARAMETERS_BYTES, MTIME, file, make_model_archive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s3_helpers import MiB, big_model, open_uploads, read

from dummy_training.contract import ROOT_HYPERPARAMETERS_NAMES
from dummy_training.ends import s3_object
from dummy_training.engine import archive as engine
from dummy_training.step.repack import run_repack

HP = HYPERPARAMETERS_BYTES.decode()
_keys = itertools.count()


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several copy parts for the bigger models; no SOURCE_DATE_EPOCH from the developer's or CI's environment."""
    monkeypatch.setattr(s3_object, "COPY_PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3_object, "GET_PART_SIZE", 2 * MiB)
    monkeypatch.delenv(engine.SOURCE_DATE_EPOCH_ENV, raising=False)


Run = tuple[str, bytes, dict]


def _runs(data: bytes, tmp: Path, s3: Any, bucket: str, endpoint: str, clocks: list[float]) -> list[Run]:
    """(label, output, summary) of a run per (path, scanner, clock): local and S3 to S3, parallel and single."""
    n = next(_keys)
    model = tmp / f"model-{n}.tar.gz"
    model.write_bytes(data)
    s3.put_object(Bucket=bucket, Key=f"in/{n}/model.tar.gz", Body=data)
    outputs = []
    for (where, parallel), now in zip(itertools.product(("local", "s3"), (True, False)), itertools.cycle(clocks),
                                      strict=False):
        label = f"{where}-{'parallel' if parallel else 'single'}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(engine.SCAN_THREADS_ENV, "2" if parallel else "1")
            mp.setattr(time, "time", lambda now=now: now)
            if where == "local":
                result = run_repack(model=str(model), hyperparameters_json=HP, output_dir=str(tmp / f"out-{n}-{label}"),
                                    progress=False)
                out = Path(result.output).read_bytes()
            else:
                result = run_repack(model=f"s3://{bucket}/in/{n}/model.tar.gz", hyperparameters_json=HP,
                                    output_uri=f"s3://{bucket}/out/{n}/{label}/", endpoint_url=endpoint,
                                    progress=False)
                out = read(s3, bucket, f"out/{n}/{label}/model.tar.gz")
        outputs.append((label, out, result.summary()))
    return outputs


def _assert_same(outputs: list[Run]) -> None:
    first_label, first, _ = outputs[0]
    for label, out, _ in outputs[1:]:
        assert out == first, f"{label} differs from {first_label}"


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), weights=st.integers(0, 300_000), newest=st.integers(0, 2_000_000_000),
       compressor=st.sampled_from(["gzip-6", "gzip-1", "isal-2", "zlib-ng-1", "multi-member-2", None]),
       fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]), has_hp=st.booleans())
def test_two_runs_are_byte_identical_on_both_paths_and_both_scanners(
        seed: int, weights: int, newest: int, compressor: str | None, fmt: int, has_hp: bool, s3: Any, bucket: str,
        moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = make_model_archive(seed=seed, weights_size=weights, compressor=compressor, fmt=fmt,
                              with_hyperparameters=has_hp, extra=[file("late.bin", b"late", mtime=newest)])
    outputs = _runs(data, tmp_path_factory.mktemp("repro"), s3, bucket, moto_endpoint, [1e9, 1.7e9, 2e9, 3e9])
    _assert_same(outputs)
    summary = outputs[0][2]
    if has_hp:
        assert (summary["decision"], summary["mtime"], summary["mtime_source"]) == ("preserved", None, "")
        assert outputs[0][1] == data or compressor is None
    else:
        assert (summary["mtime"], summary["mtime_source"]) == (max(newest, MTIME), "newest member")
    scanners = {s["scanner"] for _, _, s in outputs}
    if compressor in ("gzip-6", "gzip-1", "isal-2"):  # single-member gzip, blocks short enough: rapidgzip scans
        assert "rapidgzip" in scanners and len(scanners) == 2, scanners
    assert open_uploads(s3, bucket) == []


def test_a_model_of_several_copy_parts_is_byte_identical_on_both_paths(s3: Any, bucket: str, moto_endpoint: str,
                                                                       tmp_path: Path) -> None:
    outputs = _runs(big_model(17), tmp_path, s3, bucket, moto_endpoint, [1e9, 2e9])
    _assert_same(outputs)
    assert {s["method"] for _, _, s in outputs} == {"splice"}
    assert {s["scanner"] for _, _, s in outputs} == {"rapidgzip", "zlib-ng"}
    assert {s["mtime_source"] for _, _, s in outputs} == {"newest member"}


def test_source_date_epoch_sets_the_mtime_on_the_s3_path(s3: Any, bucket: str, moto_endpoint: str,
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1500000000")
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=make_model_archive())
    result = run_repack(model=f"s3://{bucket}/in/model.tar.gz", hyperparameters_json=HP,
                        output_uri=f"s3://{bucket}/out/", endpoint_url=moto_endpoint, progress=False)
    assert (result.summary()["mtime"], result.summary()["mtime_source"]) == (1_500_000_000, "SOURCE_DATE_EPOCH")
    (tmp_path / "out.tar.gz").write_bytes(read(s3, bucket, "out/model.tar.gz"))
    with tarfile.open(tmp_path / "out.tar.gz") as tf:
        last = tf.getmembers()[-1]
    assert last.name in ROOT_HYPERPARAMETERS_NAMES and last.mtime == 1_500_000_000


def _cli(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dummy_training", "repack", "--no-progress", *argv],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def test_cli_result_json_says_how_the_mtime_was_chosen(tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(make_model_archive(extra=[file("late.bin", b"x", mtime=1_750_000_000)]))
    for env, expected in (({}, (1_750_000_000, "newest member")),
                          ({"SOURCE_DATE_EPOCH": "1600000000"}, (1_600_000_000, "SOURCE_DATE_EPOCH"))):
        out = tmp_path / f"out-{len(env)}"
        proc = _cli("--model", str(model), "--hyperparameters-json", HP, "--output-dir", str(out),
                    "--result-json", str(out / "result.json"), **env)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads((out / "result.json").read_text())
        assert (summary["mtime"], summary["mtime_source"]) == expected
        assert f"from: {expected[1]}" in proc.stderr


def test_cli_bad_source_date_epoch_is_one_line_exit_2_before_anything_is_written(
        tmp_path: Path, s3: Any, bucket: str, moto_endpoint: str) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(make_model_archive())
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=model.read_bytes())
    for target in (["--output-dir", str(tmp_path / "out")], ["--output-uri", f"s3://{bucket}/out/"]):
        source = str(model) if target[0] == "--output-dir" else f"s3://{bucket}/in/model.tar.gz"
        proc = _cli("--model", source, "--hyperparameters-json", HP, *target, "--endpoint-url", moto_endpoint,
                    SOURCE_DATE_EPOCH="next tuesday")
        assert proc.returncode == 2, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
        assert errors == ["dummy-training: error: SOURCE_DATE_EPOCH='next tuesday' is not a whole number of seconds "
                          "since 1970 (what date +%s prints)"], proc.stderr
    assert not (tmp_path / "out").exists()
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["in/model.tar.gz"]
    assert open_uploads(s3, bucket) == []

