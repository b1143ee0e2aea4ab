"""A tiny SageMaker endpoint (JSON 1.1 protocol; on 127.0.0.1 unless told otherwise) for what moto cannot do:
jobs that stay InProgress, StopProcessingJob (moto answers HTTP 500), and throttling answers that botocore really
retries. It records the access key each request was signed with (``access_keys``).

Point a client at it with ``endpoint_url`` or, for a subprocess, ``AWS_ENDPOINT_URL_SAGEMAKER``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from dummy_training import contract
from dummy_training.aws import parse_s3_uri


@dataclass
class FakeSageMaker:
    #: how many DescribeProcessingJob calls (of existing jobs) answer ThrottlingException first
    throttle_describes: int = 0
    #: status a created job reports until it is stopped
    running_status: str = "InProgress"
    #: plays the job when it is created (e.g. ``PlaySageMaker``); then the job is Completed, or Failed if it raised
    on_create: Callable[[dict[str, Any]], None] | None = None
    #: play ``on_create`` in a thread after answering (InProgress meanwhile), as SageMaker does; with ``gate``
    #: set, the thread first waits for the event (a job that runs until the test lets it finish)
    background: bool = False
    gate: threading.Event | None = None
    #: SageMaker's answer to a CreateProcessingJob request it refuses: ``(error code, message)``, or None
    reject: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: the access key id each HTTP request was signed with (SigV4 ``Credential=``), "" for an unsigned one
    access_keys: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the address to listen on (a node's IP when pods must reach it)
    host: str = "127.0.0.1"

    def start(self, host: str | None = None) -> str:
        """Serve on ``host`` (default: the ``host`` field) on a free port; the endpoint URL."""
        host = host or self.host
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
                target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                credential = self.headers.get("Authorization", "").partition("Credential=")[2]
                with fake.lock:
                    fake.access_keys.append(credential.partition("/")[0])
                status, payload = fake.handle(target, json.loads(body or b"{}"))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://{host}:{self.server.server_address[1]}"

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
                arn = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name.lower()}"
                if job:
                    return 400, {"__type": "ResourceInUse", "message": "Job name must be unique within an AWS "
                                 f"account and region, and a job with this name already exists ({arn})"}
                refused = self.reject(params) if self.reject else None
                if refused:
                    return 400, {"__type": refused[0], "message": refused[1]}
                self.jobs[name] = {**params, "ProcessingJobArn": arn, "ProcessingJobStatus": self.running_status,
                                   "CreationTime": time.time()}
                if self.on_create and self.background:
                    self.jobs[name]["ProcessingStartTime"] = time.time()
                    threading.Thread(target=self._play, args=(name, params), daemon=True).start()
                elif self.on_create:
                    self.jobs[name]["ProcessingStartTime"] = time.time()  # the times the report bills
                    try:
                        self.on_create(params)
                        self.jobs[name]["ProcessingJobStatus"] = "Completed"
                    except Exception as exc:  # noqa: BLE001 - reported as the job's FailureReason
                        self.jobs[name].update(ProcessingJobStatus="Failed", FailureReason=str(exc)[-500:])
                    self.jobs[name]["ProcessingEndTime"] = time.time()
                return 200, {"ProcessingJobArn": arn}
            if not job:
                return 400, {"__type": "ValidationException",
                             "message": f"Could not find requested job with name {name}"}
            if op == "DescribeProcessingJob":
                if self.throttle_describes > 0:
                    self.throttle_describes -= 1
                    return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
                out = dict(job)
                if job["ProcessingJobStatus"] == "Stopping":
                    job["ProcessingJobStatus"] = "Stopped"
                return 200, out
            if op == "StopProcessingJob":
                if job["ProcessingJobStatus"] not in ("InProgress", "Stopping"):
                    return 400, {"__type": "ValidationException", "message": "The request was rejected because "
                                 f"the processing job is in status {job['ProcessingJobStatus']}."}
                job["ProcessingJobStatus"] = "Stopping"
                return 200, {}
            return 400, {"__type": "InvalidAction", "message": op}


    def _play(self, name: str, params: dict[str, Any]) -> None:
        if self.gate is not None:
            self.gate.wait()
        outcome: dict[str, Any] = {"ProcessingJobStatus": "Completed"}
        try:
            if self.on_create is not None:
                self.on_create(params)
        except Exception as exc:  # noqa: BLE001 - reported as the job's FailureReason
            outcome = {"ProcessingJobStatus": "Failed", "FailureReason": str(exc)[-500:]}
        with self.lock:
            job = self.jobs[name]
            if job["ProcessingJobStatus"] == "InProgress":  # not stopped meanwhile
                job.update(outcome, ProcessingEndTime=time.time())


class PlaySageMaker:
    """Runs a CreateProcessingJob request the way a SageMaker Processing instance would, on this machine."""

    def __init__(self, endpoint: str, root: Path) -> None:
        self.endpoint = endpoint
        self.root = root
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.ran: list[list[str]] = []

    def local(self, container_path: str) -> Path:
        assert container_path.startswith(contract.DEFAULT_OPT_ML_ROOT + "/"), container_path
        return self.root / container_path[len(contract.DEFAULT_OPT_ML_ROOT) + 1:]

    def __call__(self, params: dict[str, Any], **_kw: Any) -> None:
        for inp in params.get("ProcessingInputs", []):
            s3_input = inp["S3Input"]
            assert s3_input["S3DataType"] == "S3Prefix"
            bucket, prefix = parse_s3_uri(s3_input["S3Uri"])
            target = self.local(s3_input["LocalPath"])
            target.mkdir(parents=True, exist_ok=True)
            keys = [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
            assert keys, f"nothing staged at {s3_input['S3Uri']}"
            for key in keys:  # S3Prefix: the object's name relative to the prefix's "directory"
                rel = key[len(prefix.rsplit("/", 1)[0]) + 1:] if "/" in prefix else key
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, key, str(target / rel))
        outputs = params.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for out in outputs:
            self.local(out["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        app = params["AppSpecification"]
        args = [str(self.local(a)) if a.startswith(contract.DEFAULT_OPT_ML_ROOT + "/") else a
                for a in app["ContainerArguments"]]
        entry = app["ContainerEntrypoint"]
        assert entry[0] == contract.CONSOLE_SCRIPT
        cmd = [sys.executable, "-m", "dummy_training", *entry[1:], *args]
        self.ran.append(cmd)
        env = {**os.environ, contract.OPT_ML_ROOT_ENV: str(self.root), "AWS_ENDPOINT_URL": self.endpoint}
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        for out in outputs:  # S3UploadMode EndOfJob: the LocalPath's files under the S3Uri
            s3_output = out["S3Output"]
            bucket, prefix = parse_s3_uri(s3_output["S3Uri"])
            local_dir = self.local(s3_output["LocalPath"])
            for f in local_dir.rglob("*"):
                if f.is_file():
                    self.s3.upload_file(str(f), bucket, f"{prefix.rstrip('/')}/{f.relative_to(local_dir)}")
