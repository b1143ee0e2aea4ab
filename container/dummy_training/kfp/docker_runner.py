"""Make ``kfp.local.DockerRunner`` report a task's real exit code (Docker and podman).

kfp 2.17 starts each task's container with ``auto_remove=True`` and reads its logs and exit code afterwards. A task
that ends quickly is gone by then: Docker answers 404 and kfp assumes exit code 0, so a FAILED task is reported
SUCCESS (kubeflow/pipelines#13332); podman's Docker API answers 500 and the run stops with an ``APIError``. The
replacement below keeps the container until its logs and exit code are read, then removes it. It also asks the
engine whether the image exists (``images.get``: the engine resolves ``dummy-training:0.1.0`` the way ``docker
run`` would; kfp compares tag strings, which misses podman's ``docker.io/library/...`` names and pulls).

    from kfp import local
    from dummy_training.kfp.docker_runner import keep_containers

    keep_containers()
    local.init(runner=local.DockerRunner(), pipeline_root="/abs/path/writable/by/uid/1000")
"""

from __future__ import annotations

from typing import Any


def run_docker_container(client: Any, image: str, command: list[str], volumes: dict[str, Any],
                         **container_run_args: Any) -> int:
    """``kfp.local.docker_task_handler.run_docker_container`` without ``auto_remove``: the task's exit code."""
    import docker

    if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        image += ":latest"
    try:
        client.images.get(image)
        print(f"Found image {image!r}\n")
    except docker.errors.ImageNotFound:
        print(f"Pulling image {image!r}")
        client.images.pull(image)
        print("Image pull complete\n")
    container_run_args.pop("auto_remove", None)
    container = client.containers.run(image=image, command=command, volumes=volumes, detach=True, stdout=True,
                                      stderr=True, **container_run_args)
    try:
        for chunk in container.logs(stream=True, follow=True):
            print(chunk.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError as exc:  # the exit code is known: a failed clean-up must not replace it
            print(f"could not remove container {container.id}: {exc}")


def keep_containers() -> None:
    """Install ``run_docker_container`` into kfp.local (idempotent; affects DockerRunner only)."""
    from kfp.local import docker_task_handler

    docker_task_handler.run_docker_container = run_docker_container
