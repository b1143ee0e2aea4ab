"""S3 to S3 repack end to end (run_repack and the CLI) against moto's HTTP server.

Same decision, validation and exit codes as the local path; the output is byte-identical to what the local
path writes; the bytes uploaded stay small whatever the model size; nothing is left behind on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from archives import HOSTILE_ARCHIVES, HYPERPARAMETERS_BYTES, MTIME, make_model_archive
from s3_helpers import MiB, Recorder, big_model, deny_s3, object_exists, open_uploads, read

from dummy_training import contract
from dummy_training.ends import s3_object
from dummy_training.engine import archive as engine
from dummy_training.errors import DummyTrainingError, InvalidInputError
from dummy_training.step.repack import run_repack

HP = HYPERPARAMETERS_BYTES.decode()
#: Whatever the model size, an inject uploads only the re-encoded tail: well under this.
UPLOAD_BOUND = 512 * 1024


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_object, "COPY_PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3_object, "GET_PART_SIZE", 2 * MiB)


def _put(s3: Any, bucket: str, key: str, data: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def _local(tmp_path: Path, data: bytes, name: str, **kwargs: Any) -> bytes:
    model = tmp_path / f"{name}.tar.gz"
    model.write_bytes(data)
    out = tmp_path / f"{name}-out"
    run_repack(model=str(model), output_dir=str(out), mtime=MTIME, progress=False, **kwargs)
    return (out / contract.MODEL_FILENAME).read_bytes()


CASES = {
    # name: (archive, has hyperparameters.json)
    "small-inject": (lambda: make_model_archive(), False),
    "small-preserve": (lambda: make_model_archive(with_hyperparameters=True), True),
    "8MiB-inject": (lambda: big_model(8), False),
    "17MiB-inject": (lambda: big_model(17), False),  # several copy parts at a 5 MiB part size
    "17MiB-preserve": (lambda: big_model(17, with_hyperparameters=True), True),
}


@pytest.mark.parametrize("scanner", ["rapidgzip", "zlib-ng"])
@pytest.mark.parametrize("case", list(CASES))
def test_s3_to_s3_matches_the_local_path_byte_for_byte(case, scanner, s3, bucket, moto_endpoint, tmp_path,  # noqa: ANN001
                                                       monkeypatch) -> None:  # noqa: ANN001
    """Both scanners over S3 (rapidgzip over ranged GETs in a child process, or the single-thread one) give the
    local path's bytes."""
    monkeypatch.setattr(engine, "_parallel_worthwhile", lambda: scanner == "rapidgzip")
    build, has_hp = CASES[case]
    data = build()
    uri = _put(s3, bucket, "in/model.tar.gz", data)
    s3_object.TRAFFIC.reset()
    result = run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/",
                        endpoint_url=moto_endpoint, mtime=MTIME, progress=False)
    uploaded = s3_object.TRAFFIC.bytes_uploaded
    assert result.scanner == scanner
    if scanner == "rapidgzip":  # the child's reads are counted too
        assert result.bytes_read >= len(data)
    assert result.output == f"s3://{bucket}/out/model.tar.gz"
    out = read(s3, bucket, "out/model.tar.gz")
    assert out == _local(tmp_path, data, case, hyperparameters_json=HP)
    decision = contract.DECISION_PRESERVED if has_hp else contract.DECISION_INJECTED
    assert result.decision == decision
    if has_hp:
        assert out == data
    meta = s3.head_object(Bucket=bucket, Key="out/model.tar.gz")["Metadata"]
    assert meta[contract.META_DECISION] == decision
    assert meta[contract.META_SOURCE_URI] == uri
    assert meta[contract.META_SOURCE_ETAG] == s3.head_object(Bucket=bucket, Key="in/model.tar.gz")["ETag"].strip('"')
    assert contract.META_VERSION in meta
    if len(data) >= 5 * MiB:  # the model itself never travels: copies server-side, the tail uploaded
        assert uploaded < UPLOAD_BOUND
        assert result.bytes_copied >= len(data) - UPLOAD_BOUND
    assert open_uploads(s3, bucket) == []


def test_bytes_uploaded_do_not_grow_with_the_model(s3, bucket, moto_endpoint) -> None:  # noqa: ANN001
    uploaded = []
    for mib in (6, 24):
        uri = _put(s3, bucket, f"in/{mib}.tar.gz", big_model(mib, seed=mib))
        s3_object.TRAFFIC.reset()
        run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/{mib}/",
                   endpoint_url=moto_endpoint, progress=False)
        uploaded.append(s3_object.TRAFFIC.bytes_uploaded)
        assert s3_object.TRAFFIC.snapshot()["requests_UploadPartCopy"] >= mib // 5  # the prefix: server-side
    assert all(0 < u < UPLOAD_BOUND for u in uploaded), uploaded


def test_every_hostile_archive_is_rejected_leaving_nothing(s3, bucket, moto_endpoint) -> None:  # noqa: ANN001
    outcomes = {}
    for name, build in HOSTILE_ARCHIVES.items():
        uri = _put(s3, bucket, f"in/{name}.tar.gz", build())
        try:
            run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/{name}/",
                       endpoint_url=moto_endpoint, progress=False)
            outcomes[name] = "accepted"
        except DummyTrainingError as exc:
            outcomes[name] = exc.exit_code
        assert not object_exists(s3, bucket, f"out/{name}/model.tar.gz"), name
    assert outcomes == dict.fromkeys(HOSTILE_ARCHIVES, 2)
    assert open_uploads(s3, bucket) == []


def test_source_overwritten_mid_run_fails_cleanly(s3, bucket, moto_endpoint, monkeypatch) -> None:  # noqa: ANN001
    uri = _put(s3, bucket, "in/model.tar.gz", big_model(8))
    real_get = s3_object.S3Source._get
    calls = []

    def get_then_overwrite(self: s3_object.S3Source, start: int, end: int) -> bytes:
        calls.append(start)
        if len(calls) == 3:  # someone replaces the model while we read it
            s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=big_model(8, seed=99))
        return real_get(self, start, end)

    monkeypatch.setattr(s3_object.S3Source, "_get", get_then_overwrite)
    with pytest.raises(DummyTrainingError, match="source object changed while it was being read") as info:
        run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/",
                   endpoint_url=moto_endpoint, progress=False)
    assert info.value.exit_code == 3
    assert not object_exists(s3, bucket, "out/model.tar.gz")
    assert open_uploads(s3, bucket) == []


def test_output_key_equal_to_input_key_is_refused(s3, bucket, moto_endpoint) -> None:  # noqa: ANN001
    uri = _put(s3, bucket, "m/model.tar.gz", make_model_archive())
    with pytest.raises(InvalidInputError, match="is the input model"):
        run_repack(model=uri, hyperparameters_json=HP, output_uri=uri, endpoint_url=moto_endpoint, progress=False)
    assert read(s3, bucket, "m/model.tar.gz") == make_model_archive()
    assert open_uploads(s3, bucket) == []


def test_local_model_to_s3_output(s3, bucket, moto_endpoint, tmp_path) -> None:  # noqa: ANN001
    data = big_model(6)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(data)
    run_repack(model=str(model), hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/model.tar.gz",
               endpoint_url=moto_endpoint, mtime=MTIME, progress=False)
    assert read(s3, bucket, "out/model.tar.gz") == _local(tmp_path, data, "again", hyperparameters_json=HP)


def test_access_denied_is_one_line_exit_3(s3, bucket, moto_endpoint, monkeypatch) -> None:  # noqa: ANN001
    uri = _put(s3, bucket, "in/model.tar.gz", make_model_archive())

    real = s3_object.make_client

    def denied_client(*args: Any, **kwargs: Any) -> Any:
        client = real(*args, **kwargs)
        client.meta.events.register("before-send.s3", deny_s3)
        return client

    monkeypatch.setattr(s3_object, "make_client", denied_client)
    with pytest.raises(DummyTrainingError, match="access denied") as info:
        run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/",
                   endpoint_url=moto_endpoint, progress=False)
    assert info.value.exit_code == 3 and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------ the CLI
def _env(moto_endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    return {**env, "DUMMY_TRAINING_S3_COPY_PART_SIZE": str(5 * MiB), **extra}


@pytest.mark.parametrize(("model", "code", "message"), [
    ("s3://{bucket}/nope/model.tar.gz", 1, "no object at s3://{bucket}/nope/model.tar.gz"),
    ("s3://dt-no-such-bucket-anywhere/model.tar.gz", 1, "bucket 'dt-no-such-bucket-anywhere' does not exist"),
])
def test_cli_missing_object_or_bucket_is_one_line(model, code, message, bucket, moto_endpoint) -> None:  # noqa: ANN001
    proc = subprocess.run(
        [sys.executable, "-m", "dummy_training", "repack", "--model", model.format(bucket=bucket),
         "--hyperparameters-json", HP, "--output-uri", f"s3://{bucket}/out/", "--endpoint-url", moto_endpoint],
        capture_output=True, text=True, env=_env(moto_endpoint), timeout=120)
    assert proc.returncode == code, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message.format(bucket=bucket) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr



def test_cli_report_and_result_json_to_s3(s3, bucket, moto_endpoint, tmp_path) -> None:  # noqa: ANN001
    """What a processing job in s3_direct mode runs: the report and the result written as objects, through the same
    --endpoint-url as the model (the environment names no endpoint)."""
    model = _put(s3, bucket, "in/model.tar.gz", make_model_archive(with_hyperparameters=False))
    proc = subprocess.run(
        [sys.executable, "-m", "dummy_training", "repack", "--model", model, "--hyperparameters-json", HP,
         "--output-uri", f"s3://{bucket}/job/output/", "--endpoint-url", moto_endpoint, "--no-progress",
         "--report", f"s3://{bucket}/job/report/report.md", "--result-json", f"s3://{bucket}/job/report/result.json"],
        capture_output=True, text=True, env=_env(moto_endpoint), timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = read(s3, bucket, "job/report/report.md").decode()
    assert text.startswith("# dummy-training repack: hyperparameters.json injected\n")
    assert f"| URI | s3://{bucket}/job/output/model.tar.gz |" in text
    result = json.loads(read(s3, bucket, "job/report/result.json"))
    assert result["decision"] == contract.DECISION_INJECTED
    assert result["output"] == f"s3://{bucket}/job/output/model.tar.gz"
    assert not list(tmp_path.iterdir())  # nothing written locally


@pytest.mark.parametrize(("flag", "uri", "code", "message"), [
    ("--report", "s3://dt-no-such-bucket-anywhere/r.md", 1,
     "write report s3://dt-no-such-bucket-anywhere/r.md: not found (NoSuchBucket)"),
    ("--result-json", "s3://dt-no-such-bucket-anywhere/r.json", 1,
     "write result s3://dt-no-such-bucket-anywhere/r.json: not found (NoSuchBucket)"),
    ("--report", "s3://{bucket}/reports/", 2, "the URI names no object key"),
])
def test_cli_report_to_s3_errors_are_one_line(flag, uri, code, message, s3, bucket, moto_endpoint,  # noqa: ANN001
                                              tmp_path) -> None:
    model = _put(s3, bucket, "in/model.tar.gz", make_model_archive(with_hyperparameters=False))
    proc = subprocess.run(
        [sys.executable, "-m", "dummy_training", "repack", "--model", model, "--hyperparameters-json", HP,
         "--output-dir", str(tmp_path / "out"), "--endpoint-url", moto_endpoint, "--no-progress",
         flag, uri.format(bucket=bucket)],
        capture_output=True, text=True, env=_env(moto_endpoint), timeout=120)
    assert proc.returncode == code, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dummy-training: error:")]
    assert len(errors) == 1 and message.format(bucket=bucket) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr

SLOW_COPIES = """
import os, sys, time, pathlib
from dummy_training import cli
from dummy_training.ends import s3_object

marker = pathlib.Path(sys.argv[1])
real = s3_object.S3Sink._copy_part

def slow_copy(self, *args, **kwargs):
    etag = real(self, *args, **kwargs)
    marker.touch()  # a part has landed: the upload is under way
    time.sleep(1.5)
    return etag

s3_object.S3Sink._copy_part = slow_copy
raise SystemExit(cli.main(sys.argv[2:]))
"""


def test_sigterm_during_the_upload_leaves_no_object_and_no_upload(s3, bucket, moto_endpoint, tmp_path) -> None:  # noqa: ANN001
    uri = _put(s3, bucket, "in/model.tar.gz", big_model(24, seed=7))
    marker = tmp_path / "part-landed"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_COPIES, str(marker), "repack", "--model", uri, "--hyperparameters-json", HP,
         "--output-uri", f"s3://{bucket}/out/", "--endpoint-url", moto_endpoint, "--no-progress"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(moto_endpoint))
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "no part landed in time"
    assert len(open_uploads(s3, bucket)) == 1  # the upload is open, with parts in it
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted by SIGTERM" in stderr
    assert not object_exists(s3, bucket, "out/model.tar.gz")
    assert open_uploads(s3, bucket) == []


def test_recorder_sees_copy_parts_in_order(s3, bucket, moto_endpoint, monkeypatch) -> None:  # noqa: ANN001
    """The prefix copies are contiguous ranges of the source, each within the S3 part limits."""
    rec = Recorder()
    real = s3_object.make_client
    monkeypatch.setattr(s3_object, "make_client", lambda *a, **k: rec.attach(real(*a, **k)))
    data = big_model(17, seed=3)
    uri = _put(s3, bucket, "in/model.tar.gz", data)
    result = run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/o/m.tar.gz",
                        endpoint_url=moto_endpoint, progress=False)
    ranges = rec.copy_ranges()
    assert ranges[0][0] == 0 and ranges[-1][1] == result.kept_prefix
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(5 * MiB <= b - a <= 5 << 30 for a, b in ranges)
    assert len(ranges) >= 3
    assert all(p["CopySourceIfMatch"] == s3.head_object(Bucket=bucket, Key="in/model.tar.gz")["ETag"]
               for p in rec.params("UploadPartCopy"))
    assert all(p.get("IfMatch") for p in rec.params("GetObject"))


@pytest.mark.parametrize("scanner", ["rapidgzip", "zlib-ng"])
def test_preserve_known_early_copies_nothing_but_the_one_object(scanner, s3, bucket, moto_endpoint,  # noqa: ANN001
                                                                 monkeypatch) -> None:  # noqa: ANN001
    """hyperparameters.json near the start of the archive: the decision is known after a few KiB of the scan,
    so no UploadPartCopy is started for a copy the preserve's single CopyObject replaces."""
    monkeypatch.setattr(engine, "_parallel_worthwhile", lambda: scanner == "rapidgzip")
    data = big_model(24, with_hyperparameters=True, seed=5)
    uri = _put(s3, bucket, "in/model.tar.gz", data)
    s3_object.TRAFFIC.reset()
    result = run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/",
                        endpoint_url=moto_endpoint, progress=False)
    assert (result.decision, result.scanner) == (contract.DECISION_PRESERVED, scanner)
    assert read(s3, bucket, "out/model.tar.gz") == data
    requests = s3_object.TRAFFIC.snapshot()
    assert requests.get("requests_UploadPartCopy", 0) == 0
    assert requests["requests_CopyObject"] == 1
    assert open_uploads(s3, bucket) == []


def test_one_deflate_block_archive_uploads_its_re_deflated_body(s3, bucket, moto_endpoint, tmp_path) -> None:  # noqa: ANN001
    """zlib-ng level 1 writes the whole stream as one deflate block: nothing before the tar end can be copied,
    so the re-deflated model is uploaded in parts; the object is still the local path's bytes."""
    from zlib_ng import zlib_ng

    tar = zlib.decompress(big_model(12, seed=9), 31)
    compressor = zlib_ng.compressobj(1, zlib_ng.DEFLATED, 31)
    data = compressor.compress(tar) + compressor.flush()
    uri = _put(s3, bucket, "in/one-block.tar.gz", data)
    s3_object.TRAFFIC.reset()
    result = run_repack(model=uri, hyperparameters_json=HP, output_uri=f"s3://{bucket}/out/",
                        endpoint_url=moto_endpoint, mtime=MTIME, progress=False)
    out = read(s3, bucket, "out/model.tar.gz")
    assert (result.method, result.kept_prefix) == ("splice", 10)
    assert out == _local(tmp_path, data, "one-block", hyperparameters_json=HP)
    assert s3_object.TRAFFIC.bytes_uploaded >= len(out) - 10
    assert open_uploads(s3, bucket) == []


def test_long_block_probe_fetches_little_from_s3(s3, bucket, moto_endpoint) -> None:  # noqa: ANN001
    """The probe before the parallel scan reads in small growing ranges, not the source's read-ahead."""
    from dummy_training.engine.gzip_scan import has_long_blocks

    uri = _put(s3, bucket, "in/probe.tar.gz", big_model(24, seed=11))
    with s3_object.S3Source.open(uri, endpoint_url=moto_endpoint) as source:
        s3_object.TRAFFIC.reset()
        assert has_long_blocks(source) is False
        assert s3_object.TRAFFIC.bytes_downloaded <= 256 << 10
