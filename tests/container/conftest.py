"""Fixtures of the container tier (test_image.py, ``pytest -m container``): the built image under podman or docker.

The tier builds nothing: ``container/build.sh`` (and ``--root``) does, in ``.ci/container.sh``. Which images:
``DUMMY_TRAINING_TEST_IMAGE`` (default ``dummy-training:<version>``, what build.sh tags and the committed YAML
names) and ``DUMMY_TRAINING_TEST_ROOT_IMAGE`` (default: that name with ``-root``). Which engine:
``CONTAINER_ENGINE``, else podman, else docker. For kfp.local.DockerRunner the tier starts podman's Docker API
service on a private socket for the session (docker: its own daemon, ``DOCKER_HOST`` as set).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from dummy_training.kfp.components import DEFAULT_IMAGE

IMAGE = os.environ.get("DUMMY_TRAINING_TEST_IMAGE") or DEFAULT_IMAGE
ROOT_IMAGE = os.environ.get("DUMMY_TRAINING_TEST_ROOT_IMAGE") or f"{IMAGE}-root"
#: the image's user (container/Dockerfile ARG APP_UID)
IMAGE_UID = 1000


def _engine_name() -> str:
    name = os.environ.get("CONTAINER_ENGINE") or ("podman" if shutil.which("podman") else "docker")
    if not shutil.which(name):
        pytest.fail(f"the container tier needs podman or docker (CONTAINER_ENGINE={name!r} not found)")
    return name


@dataclass
class Engine:
    """The container engine's command line."""

    name: str

    def run(self, image: str, *args: str, entrypoint: Sequence[str] = (), mounts: Sequence[tuple[Path, str]] = (),
            env: dict[str, str] | None = None, cpus: float | None = None, network: str | None = None,
            read_only_inputs: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``<engine> run --rm``; ``entrypoint`` like SageMaker's ContainerEntrypoint (first word the program, the
        rest before ``args``: docker's --entrypoint takes one word). Mounts whose target contains ``/input`` are
        read-only, as a SageMaker job's inputs are to the job."""
        cmd = [self.name, "run", "--rm"]
        for host, target in mounts:
            ro = ":ro" if read_only_inputs and "/input" in target else ""
            cmd += ["-v", f"{host}:{target}{ro}"]
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        if cpus is not None:
            cmd += ["--cpus", str(cpus)]
        if network:
            cmd += ["--network", network]
        if entrypoint:
            cmd += ["--entrypoint", entrypoint[0]]
        cmd += [image, *entrypoint[1:], *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def image_exists(self, image: str) -> bool:
        proc = subprocess.run([self.name, "image", "inspect", image], capture_output=True, timeout=60)
        return proc.returncode == 0

    def image_labels(self, image: str) -> dict[str, str]:
        out = subprocess.run([self.name, "image", "inspect", image], capture_output=True, text=True, check=True,
                             timeout=60).stdout
        return json.loads(out)[0].get("Config", {}).get("Labels") or {}


@pytest.fixture(scope="session")
def engine() -> Engine:
    found = Engine(_engine_name())
    missing = [image for image in (IMAGE, ROOT_IMAGE) if not found.image_exists(image)]
    if missing:
        pytest.fail(f"image(s) {missing} not found in {found.name}: build them with container/build.sh and "
                    "container/build.sh --root (.ci/container.sh does), or set DUMMY_TRAINING_TEST_IMAGE")
    return found


def writable_by_image(directory: Path) -> Path:
    """A host directory the image's non-root user can write through a bind mount (any engine, rootless too)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)
    return directory


def root_owned(engine: Engine, directory: Path) -> Path:
    """A host directory that is root-owned 0755 inside the container, as SageMaker mounts /opt/ml/processing."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(directory, 0, 0)
    elif engine.name != "podman":  # rootless podman maps this user to the container's root; docker does not
        pytest.skip("a root-owned bind mount needs root (or rootless podman)")
    directory.chmod(0o755)
    return directory


@pytest.fixture(scope="session")
def docker_host(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """The Docker API for kfp.local.DockerRunner: podman's service on a private socket, started and stopped here
    (docker: None, its daemon as configured)."""
    if engine.name != "podman":
        yield os.environ.get("DOCKER_HOST")
        return
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    url = f"unix://{sock}"
    log = (sock.parent / "service.log").open("w")
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", url], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"podman system service did not start: {(sock.parent / 'service.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


@pytest.fixture
def docker_api(docker_host: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_HOST for kfp.local.DockerRunner, and its tasks' real exit codes (dummy_training.kfp.docker_runner)."""
    from kfp.local import docker_task_handler

    from dummy_training.kfp.docker_runner import run_docker_container

    if docker_host:
        monkeypatch.setenv("DOCKER_HOST", docker_host)
    monkeypatch.setattr(docker_task_handler, "run_docker_container", run_docker_container)


@pytest.fixture(params=["chmod 0777", "user"])
def docker_runner(request: pytest.FixtureRequest, docker_api: None, tmp_path: Path) -> Path:
    """kfp.local with DockerRunner; returns the pipeline root, which the tasks can write as the README tells
    DockerRunner users: a root anyone can write (the image runs as UID 1000), or the tasks run as this user."""
    from kfp import local

    root = tmp_path / "pipeline_root"
    if request.param == "user":
        root.mkdir()
        root.chmod(0o755)
        runner = local.DockerRunner(user=f"{os.getuid()}:{os.getgid()}")
    else:
        writable_by_image(root)
        runner = local.DockerRunner()
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    return root
