"""The ACK side of the peers tier: the ProcessingJob CRD served by the real kube-apiserver, and a stand-in for the
ACK SageMaker controller that writes the resource's status the way the real one does.

Why a stand-in: the Go module proxy this project's machines use answers 403 ("This module version is not
available") for ``github.com/aws-controllers-k8s/sagemaker-controller`` at every version, so .ci cannot build
the controller (tests/peers/README.md). What the real apiserver does with our resources (schema, pruning, strict
field validation, finalizers and deletionTimestamp, RBAC of the launcher's service account, status subresource)
is real; what writes the status is ``StandInController``, modelled on the controller's v1.9.1 sources and ACK
runtime v0.62.0 (``pkg/condition``, ``pkg/runtime/reconciler.go``; the runtime module is in the module cache):

Each pass describes the job of each resource on ``fake_sagemaker.FakeSageMaker`` (called in-process; the
controller would call it over HTTP), as the controller does:

- not found (only a ``ValidationException`` starting "Could not find requested job" counts, generator.yaml):
  add the finalizer ``finalizers.sagemaker.services.k8s.aws/ProcessingJob`` and CreateProcessingJob; on success
  ``ackResourceMetadata`` (arn, ownerAccountID, region), ``processingJobStatus`` and the conditions
  ``ACK.ResourceSynced`` / ``Ready`` (the runtime mirrors Synced into Ready): False with "ProcessingJob is in
  InProgress status." while InProgress or Stopping, True otherwise (``SetSyncedCondition``); ``failureReason``;
- a CreateProcessingJob that SageMaker rejects is classified as the controller does
  (``processing_job/sdk.go`` ``terminalAWSError``): ResourceNotFound, ResourceInUse, InvalidParameterCombination,
  InvalidParameterValue and MissingParameter give ``ACK.Terminal`` True, any other code (SageMaker's own
  ``ValidationException`` among them) ``ACK.Recoverable`` True and a create retried after a backoff; the message
  is smithy's ``api error <Code>: <message>``, mirrored into ``Ready`` (False, reason the condition type), Synced
  Unknown; the runtime drops its finalizer (``setResourceUnmanaged``: nothing in AWS to stop);
- found, but the resource does not carry the finalizer (it never created that job: a job of the same name
  exists in SageMaker, e.g. one stopped when an earlier resource was deleted): ``ACK.Terminal`` "Resource already
  exists" (the runtime adopts only with its adoption annotations);
- on delete: StopProcessingJob while InProgress, wait while Stopping (``requeueWaitWhileDeleting``), then drop
  the finalizer (the object goes away).

The jobs run for real when the FakeSageMaker plays them with ``fake_sagemaker.PlaySageMaker`` (the engine on the
inputs staged in moto S3, the output uploaded).
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
from fake_sagemaker import FakeSageMaker

from dummy_training import contract

FINALIZER = "finalizers.sagemaker.services.k8s.aws/ProcessingJob"
ACCOUNT = "123456789012"
REGION = "us-east-1"
CRD_NAME = f"{contract.ACK_PLURAL}.{contract.ACK_GROUP}"
#: the error codes the controller's generated ``terminalAWSError`` counts as terminal (generator.yaml)
NOT_MANAGED_REASON = ("This resource already exists but is not managed by ACK. To bring the resource under ACK "
                      "management, you should explicitly adopt the resource by enabling the ResourceAdoption feature "
                      "gate and populating the `services.k8s.aws/adoption-policy` and "
                      "`services.k8s.aws/adoption-fields` annotations.")
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


def _cond(ctype: str, status: str, message: str, reason: str | None = None) -> dict[str, Any]:
    cond = {"type": ctype, "status": status, "message": message, "lastTransitionTime": _now()}
    if reason:
        cond["reason"] = reason
    return cond


@dataclass
class StandInController:
    """Reconciles the ProcessingJobs of ``namespace`` (as the admin) until ``stop()``, against ``sagemaker`` (a
    ``fake_sagemaker.FakeSageMaker``, called in-process where the controller would call it over HTTP): see the
    module doc. Stateless like the controller: each pass describes the job of each resource and writes what it
    learnt. ``sagemaker.calls`` is what it asked SageMaker."""

    cp: ControlPlane
    namespace: str
    sagemaker: FakeSageMaker
    #: reconcile only resources whose name contains this (keeps tests sharing a namespace apart; the real
    #: controller reconciles every resource of its watch namespace)
    match: str = ""
    #: resource uid -> monotonic time before which a recoverable error is not retried (the runtime's requeue)
    backoff: dict[str, float] = field(default_factory=dict)
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

    def _patch(self, name: str, body: dict[str, Any], *, status: bool = False) -> None:
        kw: dict[str, Any] = {"name": name, "namespace": self.namespace, "body": body,
                              "content_type": "application/merge-patch+json"}
        (self._api.status if status else self._api).patch(**kw)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for obj in self._api.get(namespace=self.namespace).items:
                    if self.match not in obj.metadata.name:
                        continue
                    try:
                        self._reconcile(obj.to_dict())
                    except Exception as exc:
                        if getattr(exc, "status", None) not in (404, 409):  # gone or changed meanwhile: next pass
                            raise
            except Exception as exc:  # noqa: BLE001 - reported by stop()
                self.errors.append(exc)
                return
            self._stop.wait(0.2)

    def _finalizers(self, meta: dict[str, Any], *, keep: bool) -> None:
        current = list(meta.get("finalizers") or [])
        wanted = ([*current, FINALIZER] if FINALIZER not in current else current) if keep else [
            f for f in current if f != FINALIZER]
        if wanted != current:
            self._patch(meta["name"], {"metadata": {"finalizers": wanted or None,
                                                    "resourceVersion": meta["resourceVersion"]}})

    def _reconcile(self, obj: dict[str, Any]) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        name, uid = meta["name"], meta["uid"]
        conds = {c["type"]: c for c in status.get("conditions") or []}
        if meta.get("deletionTimestamp"):
            if FINALIZER not in (meta.get("finalizers") or []):
                return
            code, job = self.sagemaker.handle("DescribeProcessingJob",
                                              {"ProcessingJobName": obj["spec"]["processingJobName"]})
            if code == 200 and job["ProcessingJobStatus"] == "InProgress":
                self.sagemaker.handle("StopProcessingJob", {"ProcessingJobName": job["ProcessingJobName"]})
                return  # requeued; the next pass sees Stopping
            if code == 200 and job["ProcessingJobStatus"] == "Stopping":
                return  # sdkDelete: requeueWaitWhileDeleting
            self._finalizers(meta, keep=False)
            return
        if conds.get("ACK.Terminal", {}).get("status") == "True":
            return  # terminal: nothing happens until the spec changes
        if time.monotonic() < self.backoff.get(uid, 0.0):
            return
        request = ack_reference.ack_to_request(obj["spec"])
        code, job = self.sagemaker.handle("DescribeProcessingJob", {"ProcessingJobName": request["ProcessingJobName"]})
        if code != 200 and not (job.get("__type") == "ValidationException"
                                and job.get("message", "").startswith("Could not find requested job")):
            self._error(obj, job)
            return
        if code == 200 and FINALIZER not in (meta.get("finalizers") or []):
            # A job of that name exists, but this resource never created it (reconciler.go: NotManagedMessage):
            # no adoption without the adoption annotations.
            self._patch(name, {"status": {"conditions": [
                _cond("ACK.Terminal", "True", "Resource already exists", NOT_MANAGED_REASON),
                _cond("ACK.ResourceSynced", "False", "Resource not synced", "Resource already exists"),
                _cond("Ready", "False", "Resource already exists", "ACK.Terminal")]}}, status=True)
            return
        if code != 200:  # not found: create it
            self._finalizers(meta, keep=True)
            code, answer = self.sagemaker.handle("CreateProcessingJob", request)
            if code != 200:
                self._finalizers(self._api.get(name=name, namespace=self.namespace).to_dict()["metadata"],
                                 keep=False)  # setResourceUnmanaged: nothing in AWS to stop
                self._error(obj, answer)
                return
            job = {"ProcessingJobArn": answer["ProcessingJobArn"], "ProcessingJobStatus": "InProgress"}
        self.backoff.pop(uid, None)
        job_status = job["ProcessingJobStatus"]
        synced = "False" if job_status in ("InProgress", "Stopping") else "True"
        message = f"ProcessingJob is in {job_status} status."
        want: dict[str, Any] = {
            "ackResourceMetadata": {"arn": job["ProcessingJobArn"], "ownerAccountID": ACCOUNT, "partition": "aws",
                                    "region": REGION},
            "processingJobStatus": job_status,
            "conditions": [_cond("ACK.ResourceSynced", synced, message), _cond("Ready", synced, message)],
        }
        if job.get("FailureReason"):
            want["failureReason"] = job["FailureReason"]
        if (status.get("processingJobStatus"), status.get("failureReason"), conds.get("ACK.Recoverable")) != (
                job_status, job.get("FailureReason"), None):
            self._patch(name, {"status": want}, status=True)

    def _error(self, obj: dict[str, Any], error: dict[str, Any]) -> None:
        """An AWS error as ``updateConditions`` (processing_job/sdk.go) and ``ensureConditions`` (the runtime's
        reconciler.go) write it."""
        code = error.get("__type", "")
        message = f"api error {code}: {error.get('message', '')}"
        ctype = "ACK.Terminal" if code in TERMINAL_CODES else "ACK.Recoverable"
        self._patch(obj["metadata"]["name"], {"status": {"conditions": [
            _cond(ctype, "True", message),
            _cond("ACK.ResourceSynced", "Unknown",
                  "Unable to determine if desired resource state matches latest observed state", message),
            _cond("Ready", "False", message, ctype)]}}, status=True)
        if ctype == "ACK.Recoverable":
            self.backoff[obj["metadata"]["uid"]] = time.monotonic() + 1.0


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
