"""The ACK side of the peers tier: the ProcessingJob CRD served by the real kube-apiserver, and a stand-in for the
ACK SageMaker controller that writes the resource's status the way the real one does.

Why a stand-in: the Go module proxy this project's machines use answers 403 ("This module version is not
available") for ``github.com/aws-controllers-k8s/sagemaker-controller`` at every version, so .ci cannot build
the controller (tests/peers/README.md). What the real apiserver does with our resources (schema, pruning, strict
field validation, finalizers and deletionTimestamp, RBAC of the launcher's service account, status subresource)
is real; what writes the status is ``StandInController``, modelled on the controller's v1.9.1 sources and ACK
runtime v0.62.0 (``pkg/condition``, ``pkg/runtime/reconciler.go``; the runtime module is in the module cache):

- on a new resource it adds the finalizer ``finalizers.sagemaker.services.k8s.aws/ProcessingJob``, then
  ("CreateProcessingJob") writes ``ackResourceMetadata`` (arn, ownerAccountID, region), ``processingJobStatus``
  ``InProgress`` and the conditions ``ACK.ResourceSynced`` False / ``Ready`` False (the runtime mirrors Synced
  into Ready) with "ProcessingJob is in InProgress status.";
- the job runs for real (``fake_sagemaker.PlaySageMaker``: the engine on the inputs staged in moto S3, the output
  uploaded); then ``Completed`` or ``Failed`` (``failureReason``), Synced/Ready True;
- a CreateProcessingJob that SageMaker rejects is classified as the controller does
  (``processing_job/sdk.go`` ``terminalAWSError``): ResourceNotFound, ResourceInUse, InvalidParameterCombination,
  InvalidParameterValue and MissingParameter give ``ACK.Terminal`` True, any other code (SageMaker's own
  ``ValidationException`` among them) ``ACK.Recoverable`` True and a retried create; the message is smithy's
  ``api error <Code>: <message>``, mirrored into ``Ready`` (False, reason the condition type); the runtime
  drops its finalizer (``setResourceUnmanaged``: a rejected create leaves nothing in AWS to stop);
- on delete while InProgress it records StopProcessingJob, and drops its finalizer (the object goes away).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ack_reference
from control_plane import ControlPlane

from dummy_training import contract

FINALIZER = "finalizers.sagemaker.services.k8s.aws/ProcessingJob"
ACCOUNT = "123456789012"
REGION = "us-east-1"
CRD_NAME = f"{contract.ACK_PLURAL}.{contract.ACK_GROUP}"
#: the error codes the controller's generated ``terminalAWSError`` counts as terminal (generator.yaml)
TERMINAL_CODES = frozenset({"ResourceNotFound", "ResourceInUse", "InvalidParameterCombination",
                            "InvalidParameterValue", "MissingParameter"})


def processing_job_crd() -> dict[str, Any]:
    """The controller's CRD (``config/crd/bases/sagemaker.services.k8s.aws_processingjobs.yaml`` at v1.9.1):
    its schema from tests/data/ack (descriptions dropped, nothing else changed; provenance inside) and the rest
    of the CRD as that file has it (names, scope, printer columns, status subresource)."""
    doc = ack_reference.schema_document()
    assert doc["provenance"]["version"] == "v1.9.1", doc["provenance"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "annotations": {"controller-gen.kubebuilder.io/version": "v0.19.0"}},
        "spec": {
            "group": doc["group"],
            "names": {"kind": doc["kind"], "listKind": f"{doc['kind']}List", "plural": contract.ACK_PLURAL,
                      "singular": doc["kind"].lower()},
            "scope": "Namespaced",
            "versions": [{
                "name": doc["version"],
                "additionalPrinterColumns": [
                    {"jsonPath": ".status.failureReason", "name": "FAILURE-REASON", "priority": 1,
                     "type": "string"},
                    {"jsonPath": ".status.processingJobStatus", "name": "STATUS", "type": "string"},
                ],
                "schema": {"openAPIV3Schema": doc["openAPIV3Schema"]},
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
            }],
        },
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(synced: str, message: str) -> list[dict[str, Any]]:
    now = _now()
    return [{"type": t, "status": synced, "message": message, "lastTransitionTime": now}
            for t in ("ACK.ResourceSynced", "Ready")]


@dataclass
class StandInController:
    """Reconciles the ProcessingJobs of ``namespace`` (as the admin) until ``stop()``; see the module doc.

    ``play(request)`` runs a job (boto3-cased CreateProcessingJob request; raising fails it with that reason);
    ``hold`` keeps jobs InProgress until deleted; ``reject`` maps a request to SageMaker's error, ``(code,
    message)``, or None to accept it. ``calls`` lists the SageMaker calls it made, as ``(operation, job name)``."""

    cp: ControlPlane
    namespace: str
    play: Callable[[dict[str, Any]], None] | None = None
    hold: bool = False
    reject: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    retrying: dict[str, float] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        from kubernetes import dynamic

        self._api = dynamic.DynamicClient(self.cp.api_client()).resources.get(
            api_version=contract.ACK_API_VERSION, kind=contract.ACK_KIND)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stand-in-ack-controller")

    def __enter__(self) -> StandInController:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.errors:
            raise self.errors[0]

    def release(self) -> None:
        """Stop holding: run every job held InProgress so far (and any later one)."""
        self.hold = False
        held, self.held = self.held, {}
        for name, request in held.items():
            threading.Thread(target=self._play, args=(name, request), daemon=True).start()

    def _patch(self, name: str, body: dict[str, Any], *, status: bool = False) -> None:
        kw: dict[str, Any] = {"name": name, "namespace": self.namespace, "body": body,
                              "content_type": "application/merge-patch+json"}
        if status:
            self._api.status.patch(**kw)
        else:
            self._api.patch(**kw)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for obj in self._api.get(namespace=self.namespace).items:
                    self._reconcile(obj.to_dict())
            except Exception as exc:  # noqa: BLE001 - reported by stop()
                if getattr(exc, "status", None) != 404:  # deleted between list and patch
                    self.errors.append(exc)
                    return
            self._stop.wait(0.2)

    def _reconcile(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        status = obj.get("status") or {}
        if meta.get("deletionTimestamp"):
            if FINALIZER in (meta.get("finalizers") or []):
                if status.get("processingJobStatus") in ("InProgress", "Stopping"):
                    self.calls.append(("StopProcessingJob", obj["spec"]["processingJobName"]))
                self._patch(name, {"metadata": {"finalizers": [f for f in meta["finalizers"] if f != FINALIZER]}})
            return
        if meta["uid"] in self.seen and meta["uid"] not in self.retrying:
            return
        if status.get("processingJobStatus"):
            return  # a resource this controller already created a job for (a restarted launcher re-attaches)
        if meta["uid"] in self.retrying and time.monotonic() < self.retrying[meta["uid"]]:
            return
        self.seen.add(meta["uid"])
        if FINALIZER not in (meta.get("finalizers") or []):
            self._patch(name, {"metadata": {"finalizers": [*(meta.get("finalizers") or []), FINALIZER]}})
        request = ack_reference.ack_to_request(obj["spec"])
        job = request["ProcessingJobName"]
        self.calls.append(("DescribeProcessingJob", job))
        rejected = self.reject(request) if self.reject else None
        self.calls.append(("CreateProcessingJob", job))
        if rejected:
            code, text = rejected
            message = f"api error {code}: {text}"
            ctype = "ACK.Terminal" if code in TERMINAL_CODES else "ACK.Recoverable"
            now = _now()
            self._patch(name, {"metadata": {"finalizers": [f for f in meta.get("finalizers") or []
                                                           if f != FINALIZER] or None}})
            self._patch(name, {"status": {"conditions": [
                {"type": ctype, "status": "True", "message": message, "lastTransitionTime": now},
                {"type": "ACK.ResourceSynced", "status": "Unknown", "reason": message,
                 "message": "Unable to determine if desired resource state matches latest observed state",
                 "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "reason": ctype, "message": message,
                 "lastTransitionTime": now}]}}, status=True)
            if ctype == "ACK.Recoverable":
                self.retrying[meta["uid"]] = time.monotonic() + 1.0  # the runtime requeues with backoff
            return
        self.retrying.pop(meta["uid"], None)
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{job.lower()}"
        self._patch(name, {"status": {
            "ackResourceMetadata": {"arn": arn, "ownerAccountID": ACCOUNT, "region": REGION},
            "processingJobStatus": "InProgress",
            "conditions": _conditions("False", "ProcessingJob is in InProgress status.")}}, status=True)
        if self.hold:
            self.held[name] = request
        else:
            threading.Thread(target=self._play, args=(name, request), daemon=True).start()

    def _play(self, name: str, request: dict[str, Any]) -> None:
        try:
            if self.play is not None:
                self.play(request)
            outcome: dict[str, Any] = {"processingJobStatus": "Completed"}
        except Exception as exc:  # noqa: BLE001 - the job's FailureReason
            outcome = {"processingJobStatus": "Failed", "failureReason": str(exc)[-1024:]}
        outcome["conditions"] = _conditions("True", f"ProcessingJob is in {outcome['processingJobStatus']} status.")
        try:
            self._patch(name, {"status": outcome}, status=True)
        except Exception as exc:  # noqa: BLE001 - reported by stop()
            if getattr(exc, "status", None) != 404:
                self.errors.append(exc)


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
