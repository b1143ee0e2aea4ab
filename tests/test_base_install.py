"""A base install (``pip install .``, no extras): every sub-command works or says which extra it needs.

Run in a venv that has the package and pytest and nothing else (``.ci/base-install.sh`` makes it; marker
``base_install``, deselected by default). Each sub-command's ``--help`` works; a call that needs an extra's
package ends with one line naming ``pip install 'kfp-sagemaker-dummy-training[EXTRA]'``, exit 3, no traceback,
nothing written; what needs no extra (``repack``, ``sagemaker --dry-run``) runs.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dummy_training import contract
from dummy_training.errors import EXIT_INVALID_INPUT, EXIT_NOT_FOUND, EXIT_RUNTIME

pytestmark = pytest.mark.base_install

ROLE = "arn:aws:iam::123456789012:role/dummy-training"
LAUNCH = ["--model", "s3://bucket/in/model.tar.gz", "--s3-prefix", "s3://bucket/runs", "--role-arn", ROLE,
          "--image-uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:1", "--job-name", "j"]
HELP = [[], ["repack"], ["compile"], ["demo"], ["sagemaker"], ["ack"], ["ack", "manifest"], ["ack", "run"]]
#: (arguments, the extra it needs): each must end with the one line naming the extra
NEEDS_EXTRA = [
    (["compile", "--image", "registry.example/dt:1", "--output-dir", "yaml"], "kfp"),
    (["compile", "--check"], "kfp"),
    (["demo"], "kfp"),
    (["demo", "--preserve", "-q"], "kfp"),
    (["ack", "manifest", *LAUNCH], "ack"),
    (["ack", "run", *LAUNCH, "--namespace", "ml"], "ack"),
]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dummy_training", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1",
                                                    "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(cwd)})


def error_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in res.stderr.splitlines() if line.startswith("dummy-training: error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_this_is_a_base_install() -> None:
    """No extra's package is here (else this file proves nothing), and the package is the installed one."""
    present = [d for d in ("kfp", "kfp-kubernetes", "PyYAML", "kubernetes", "sagemaker") if _installed(d)]
    assert present == [], f"not a base install: {present} installed"
    assert sorted(set(contract.EXTRA_MODULES.values())) == ["ack", "kfp", "sagemaker"]
    assert "site-packages" in (importlib.util.find_spec("dummy_training").origin or "")


@pytest.mark.parametrize("args", HELP, ids=lambda a: " ".join(a) or "top")
def test_every_help_works(args: list[str], tmp_path: Path) -> None:
    res = run([*args, "--help"], tmp_path)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout.startswith("usage: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "extra"), NEEDS_EXTRA, ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else a)
def test_what_needs_an_extra_names_it_in_one_line(args: list[str], extra: str, tmp_path: Path) -> None:
    res = run(args, tmp_path)
    assert res.returncode == EXIT_RUNTIME, res.stderr
    line = error_line(res)
    assert line.endswith(f"pip install '{contract.DISTRIBUTION}[{extra}]'"), line
    assert res.stdout == "" and list(tmp_path.iterdir()) == []  # nothing written, not even the demo's folder


def test_repack_works_and_fails_in_one_line(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("model/weights.bin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    (tmp_path / "model.tar.gz").write_bytes(buf.getvalue())
    ok = run(["repack", "--model", "model.tar.gz", "--hyperparameters-json", '{"epochs": "3"}',
              "--output-dir", "out", "-q"], tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "out/model.tar.gz", ok.stderr
    with tarfile.open(tmp_path / "out" / "model.tar.gz") as tar:
        assert json.load(tar.extractfile("hyperparameters.json")) == {"epochs": "3"}
    missing = run(["repack", "--model", "nope.tar.gz", "--output-dir", "out2"], tmp_path)
    assert missing.returncode == EXIT_NOT_FOUND and "model not found" in error_line(missing)
    no_output = run(["repack", "--model", "model.tar.gz", "--hyperparameters-json", "{}"], tmp_path)
    assert no_output.returncode == EXIT_INVALID_INPUT and "--output-dir" in error_line(no_output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz", "out"]


def test_sagemaker_needs_no_extra(tmp_path: Path) -> None:
    """The SageMaker launcher is boto3 only: its dry run works on a base install, bad input is one line."""
    ok = run(["sagemaker", *LAUNCH, "--dry-run"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ProcessingJobName"] == "j"
    bad = run(["sagemaker", *LAUNCH, "--instance-type", "m5.large", "--dry-run"], tmp_path)
    assert bad.returncode == EXIT_INVALID_INPUT and "instance type" in error_line(bad)
