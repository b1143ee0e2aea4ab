"""A tiny fake Kubernetes API server on 127.0.0.1 for the ACK ProcessingJob custom resource.

It implements what the ACK launcher uses: POST (create, 409 when the name exists), GET and DELETE of
``/apis/sagemaker.services.k8s.aws/v1alpha1/namespaces/<ns>/processingjobs[/<name>]``. Every request is
recorded. ``statuses`` plays the controller: each GET of a resource the server created (or one stored with
``put(..., scripted=True)``) sets its ``status`` to the next entry (the last one repeats), so tests script
InProgress -> Completed and the like. ``kubeconfig()`` writes a kubeconfig pointing at the server.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

PATH_RE = re.compile(
    r"^/apis/sagemaker\.services\.k8s\.aws/v1alpha1/namespaces/(?P<ns>[^/]+)/processingjobs(?:/(?P<name>[^/?]+))?"
)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.scripted: set[tuple[str, str]] = set()  # resources whose status ``statuses`` drives
        self.fail_next: list[int] = []  # HTTP codes to answer the next requests with (transient errors)
        self.before_post: Any = None  # called (under the lock) before a POST is handled: simulate a racing twin
        self.lock = threading.Lock()
        self.created = threading.Event()
        self.deleted = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with fake.lock:
                    fake.requests.append((method, self.path, body))
                    if fake.fail_next:
                        code = fake.fail_next.pop(0)
                        return self._send(code, _status(code, "InternalError", "scripted failure"))
                    match = PATH_RE.match(self.path)
                    if not match:
                        return self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                    ns, name = match["ns"], match["name"]
                    if method == "POST" and name is None:
                        if fake.before_post:
                            fake.before_post(fake, ns, body)
                        key = (ns, body["metadata"]["name"])
                        if key in fake.objects:
                            return self._send(409, _status(409, "AlreadyExists", f"{key[1]} already exists"))
                        obj = json.loads(json.dumps(body))
                        obj["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), resourceVersion="1",
                                               creationTimestamp="2026-01-01T00:00:00Z")
                        fake.objects[key] = obj
                        fake.scripted.add(key)
                        fake.created.set()
                        return self._send(201, obj)
                    key = (ns, name or "")
                    obj = fake.objects.get(key)
                    if obj is None:
                        return self._send(404, _status(404, "NotFound", f'processingjobs "{name}" not found'))
                    if method == "GET":
                        if fake.statuses and key in fake.scripted:
                            obj["status"] = fake.statuses.pop(0) if len(fake.statuses) > 1 else fake.statuses[0]
                        return self._send(200, obj)
                    if method == "DELETE":
                        del fake.objects[key]
                        fake.deleted.set()
                        return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
                    return self._send(405, _status(405, "MethodNotAllowed", method))

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def put(self, namespace: str, obj: dict[str, Any], *, scripted: bool = False) -> None:
        """Store a resource as if created earlier (by a previous attempt, or by hand); ``scripted``: its status
        follows ``statuses`` like a created one's."""
        key = (namespace, obj["metadata"]["name"])
        self.objects[key] = obj
        if scripted:
            self.scripted.add(key)

    def methods(self) -> list[str]:
        with self.lock:
            return [m for m, _p, _b in self.requests]

    def kubeconfig(self, path: Path, namespace: str = "kubeflow-user") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }))
        return path
