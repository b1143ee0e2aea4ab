"""S3 to S3 under a flaky connection: GET bodies cut mid-stream and 503s, through tests/s3_faults.FaultyProxy.

Both decisions (preserve and inject) and both scanners must come through with the bytes a clean connection
gives: a cut body is asked for again (botocore retries a 503 itself, but not a body that breaks after the call
returned)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from archives import HYPERPARAMETERS_BYTES, MTIME
from s3_faults import FaultyProxy
from s3_helpers import MiB, big_model, read

from dummy_training.ends import s3_object
from dummy_training.engine import archive as engine
from dummy_training.step.repack import run_repack

HP = HYPERPARAMETERS_BYTES.decode()


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_object, "COPY_PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3_object, "GET_PART_SIZE", 2 * MiB)


@pytest.mark.parametrize("scanner", ["rapidgzip", "zlib-ng"])
@pytest.mark.parametrize("with_hp", [True, False], ids=["preserve", "inject"])
def test_cut_bodies_and_503s_give_the_clean_bytes(with_hp: bool, scanner: str, s3: Any, bucket: str,
                                                  moto_endpoint: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_parallel_worthwhile", lambda: scanner == "rapidgzip")
    data = big_model(9, with_hyperparameters=with_hp)
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=data)
    clean = run_repack(model=f"s3://{bucket}/in/model.tar.gz", hyperparameters_json=HP,
                       output_uri=f"s3://{bucket}/clean/", endpoint_url=moto_endpoint, mtime=MTIME, progress=False)
    with FaultyProxy(moto_endpoint, cut_every=2, fail_every=4, cut_key="in/model.tar.gz") as proxy:
        result = run_repack(model=f"s3://{bucket}/in/model.tar.gz", hyperparameters_json=HP,
                            output_uri=f"s3://{bucket}/flaky/", endpoint_url=proxy.url, mtime=MTIME, progress=False)
    assert proxy.cuts >= 1 and proxy.failures >= 1  # the faults happened
    assert result.decision == clean.decision == ("preserved" if with_hp else "injected")
    assert read(s3, bucket, "flaky/model.tar.gz") == read(s3, bucket, "clean/model.tar.gz")
    if with_hp:
        assert read(s3, bucket, "flaky/model.tar.gz") == data


def test_a_body_cut_on_every_get_is_resumed_until_complete(s3: Any, bucket: str, moto_endpoint: str) -> None:
    """Every GET of the object breaks after half its body: each retry asks only for what is missing, so the read
    completes (giving up after a few breaks without progress would never get there)."""
    data = bytes(range(256)) * 4096  # 1 MiB
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=data)
    with FaultyProxy(moto_endpoint, cut_every=1, cut_key="in/model.tar.gz") as proxy:
        source = s3_object.S3Source.open(f"s3://{bucket}/in/model.tar.gz", endpoint_url=proxy.url)
        try:
            assert source.pread(1000, len(data) - 2000) == data[1000:-1000]
        finally:
            source.close()
    assert proxy.cuts >= 10


def test_a_body_that_breaks_without_progress_gives_up_with_one_line(s3: Any, bucket: str,
                                                                    moto_endpoint: str) -> None:
    from dummy_training.errors import RuntimeIOError

    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=b"x" * 4096)
    with FaultyProxy(moto_endpoint, cut_every=1, cut_key="in/model.tar.gz") as proxy:
        proxy._fraction = 0.0  # not a byte of any body: no progress, ever
        source = s3_object.S3Source.open(f"s3://{bucket}/in/model.tar.gz", endpoint_url=proxy.url)
        try:
            with pytest.raises(RuntimeIOError, match="reading from response stream|IncompleteRead") as err:
                source.pread(0, 4096)
        finally:
            source.close()
    assert "\n" not in str(err.value)
    assert proxy.cuts == s3_object._BODY_READ_ATTEMPTS
