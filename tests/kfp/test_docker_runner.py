"""dummy_training.kfp.docker_runner against a fake Docker client (the real engine: tests/container/test_image.py)."""

from __future__ import annotations

from typing import Any

import docker
import pytest

from dummy_training.kfp import docker_runner


class FakeContainer:
    def __init__(self, status: int, logs: list[bytes], remove_error: Exception | None = None) -> None:
        self.id = "c0ffee"
        self.status, self._logs, self.remove_error = status, logs, remove_error
        self.removed = False

    def logs(self, stream: bool, follow: bool) -> list[bytes]:
        assert stream and follow
        return self._logs

    def wait(self) -> dict[str, int]:
        return {"StatusCode": self.status}

    def remove(self, force: bool) -> None:
        self.removed = force
        if self.remove_error:
            raise self.remove_error


class FakeClient:
    def __init__(self, container: FakeContainer, images: set[str]) -> None:
        self.container, self.known = container, images
        self.pulled: list[str] = []
        self.run_args: dict[str, Any] = {}
        outer = self

        class Images:
            def get(self, name: str) -> object:
                if name not in outer.known:
                    raise docker.errors.ImageNotFound(name)
                return object()

            def pull(self, name: str) -> None:
                outer.pulled.append(name)

        class Containers:
            def run(self, **kwargs: Any) -> FakeContainer:
                outer.run_args = kwargs
                return outer.container

        self.images, self.containers = Images(), Containers()


@pytest.mark.parametrize("status", [0, 1, 3])
def test_the_exit_code_is_the_containers_and_the_container_is_removed(status: int,
                                                                       capsys: pytest.CaptureFixture) -> None:
    container = FakeContainer(status, [b"line one\n", b"line two\n"])
    client = FakeClient(container, {"dummy-training:0.1.0"})
    code = docker_runner.run_docker_container(client, "dummy-training:0.1.0", ["sh", "-ec", "x"], {"/r": {}},
                                              auto_remove=True, network_mode="host")
    assert code == status
    assert container.removed
    assert client.pulled == []
    assert "auto_remove" not in client.run_args and client.run_args["detach"] is True
    assert client.run_args["network_mode"] == "host" and client.run_args["command"] == ["sh", "-ec", "x"]
    assert "line one\nline two\n" in capsys.readouterr().out


def test_a_missing_image_is_pulled_with_kfps_latest_default() -> None:
    client = FakeClient(FakeContainer(0, []), set())
    docker_runner.run_docker_container(client, "localhost:5000/dummy-training", [], {})
    assert client.pulled == ["localhost:5000/dummy-training:latest"]


def test_a_failed_clean_up_keeps_the_exit_code(capsys: pytest.CaptureFixture) -> None:
    container = FakeContainer(3, [], remove_error=docker.errors.APIError("500 no such container"))
    assert docker_runner.run_docker_container(FakeClient(container, {"x:1"}), "x:1", [], {}) == 3
    assert "could not remove container c0ffee" in capsys.readouterr().out


def test_keep_containers_installs_it_into_kfp_local(monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp.local import docker_task_handler

    monkeypatch.setattr(docker_task_handler, "run_docker_container", docker_task_handler.run_docker_container)
    docker_runner.keep_containers()
    assert docker_task_handler.run_docker_container is docker_runner.run_docker_container
