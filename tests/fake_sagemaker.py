"""A tiny SageMaker endpoint on 127.0.0.1 (JSON 1.1 protocol) for what moto cannot do: jobs that stay
InProgress, StopProcessingJob (moto answers HTTP 500), and throttling answers that botocore really retries.

Point a client at it with ``endpoint_url`` or, for a subprocess, ``AWS_ENDPOINT_URL_SAGEMAKER``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeSageMaker:
    #: how many DescribeProcessingJob calls (of existing jobs) answer ThrottlingException first
    throttle_describes: int = 0
    #: status a created job reports until it is stopped
    running_status: str = "InProgress"
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
                target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                status, payload = fake.handle(target, json.loads(body or b"{}"))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def names(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self.calls]

    def handle(self, op: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append((op, params))
            name = params.get("ProcessingJobName", "")
            job = self.jobs.get(name)
            if op == "CreateProcessingJob":
                if job:
                    return 400, {"__type": "ResourceInUse", "message": f"job {name} already exists"}
                arn = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}"
                self.jobs[name] = {**params, "ProcessingJobArn": arn, "ProcessingJobStatus": self.running_status}
                return 200, {"ProcessingJobArn": arn}
            if not job:
                return 400, {"__type": "ValidationException", "message": f"Could not find requested job {name}"}
            if op == "DescribeProcessingJob":
                if self.throttle_describes > 0:
                    self.throttle_describes -= 1
                    return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
                out = dict(job)
                if job["ProcessingJobStatus"] == "Stopping":
                    job["ProcessingJobStatus"] = "Stopped"
                return 200, out
            if op == "StopProcessingJob":
                job["ProcessingJobStatus"] = "Stopping"
                return 200, {}
            return 400, {"__type": "InvalidAction", "message": op}
