#!/usr/bin/env python3
"""By hand, not in CI: `dummy-training ack run` against a REAL ack-sagemaker-controller binary on the peers
control plane, with tests/fake_sagemaker.py's FakeSageMaker over HTTP as its SageMaker and moto as its STS/S3.

The Go module proxy refuses github.com/aws-controllers-k8s/sagemaker-controller (403), so CI cannot build the
controller and the tier uses ack_peer.StandInController; this script is how the stand-in was checked. It expects
what nothing in this repository builds (no upstream source or build recipe of it is kept here):

- CONTROLLER: the `ack-sagemaker-controller` program (its `cmd/controller` main package) of the
  aws-controllers-k8s/sagemaker-controller release v1.9.1, conventionally at
  $DUMMY_TRAINING_PEERS/bin/ack-sagemaker-controller;
- SRC: that release's source tree, for its `config/crd` and `config/rbac`.

    python tests/peers/check_real_ack_controller.py CONTROLLER SRC ok|fail|validation|term|rerun

It prints the launcher's exit code and last lines, the resource as the controller left it, and the SageMaker
calls the controller made. The CRDs come from SRC/config/crd and the controller's RBAC from SRC/config/rbac (it
runs as its ServiceAccount ack-system/ack-sagemaker-controller with a TokenRequest token). AWS_CA_BUNDLE is removed
from the controller's environment: with it set, aws-sdk-go-v2 fails every reconcile ("unable to add custom RootCAs
HTTPClient, has no WithTransportOptions").
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import boto3  # noqa: E402
import yaml  # noqa: E402
from control_plane import ControlPlane, Process, free_port  # noqa: E402
from fake_sagemaker import FakeSageMaker, PlaySageMaker  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

MODES = ("ok", "fail", "validation", "term", "rerun")
NS = "kubeflow"


def main(controller: str, src: Path, mode: str) -> int:
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    work = Path(tempfile.mkdtemp(prefix="real-ack-"))
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").create_bucket(Bucket="check")
    gate = threading.Event()
    sm = FakeSageMaker(on_create=PlaySageMaker(moto_url, work / "opt-ml"), background=True,
                       gate=gate if mode in ("term", "rerun") else None,
                       reject=(lambda p: ("ValidationException", "1 validation error detected: Value 'x' at "
                                          "'roleArn' failed to satisfy constraint")) if mode == "validation" else None)
    sm_url = sm.start()
    cp = ControlPlane(work / "control-plane")
    cp.start()
    ctl = None
    try:
        crds = [*sorted((src / "config/crd/common/bases").glob("*.yaml")),
                src / "config/crd/bases/sagemaker.services.k8s.aws_processingjobs.yaml"]
        cp.apply([d for f in crds for d in yaml.safe_load_all(f.read_text()) if d])
        for ns in ("ack-system", NS):
            cp.create_namespace(ns)
        # The controller runs as its own ServiceAccount with its own RBAC (SRC/config/rbac, as kustomize lists it).
        rbac = src / "config/rbac"
        listed = yaml.safe_load((rbac / "kustomization.yaml").read_text())["resources"]
        cp.apply([d for f in listed for d in yaml.safe_load_all((rbac / f).read_text()) if d])
        ctl_token = cp.service_account_token("ack-system", "ack-sagemaker-controller", create=False)
        ctl_kubeconfig = cp.write_kubeconfig(work / "controller.kubeconfig", ctl_token, user="controller")
        env = {**{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}, "KUBECONFIG": str(ctl_kubeconfig),
               "ACK_SYSTEM_NAMESPACE": "ack-system"}
        ctl = Process("ack-sagemaker-controller", [
            controller, "--aws-region", "us-east-1", "--aws-endpoint-url", sm_url,
            "--aws-identity-endpoint-url", moto_url, "--allow-unsafe-aws-endpoint-urls",
            "--enable-development-logging", "--log-level", "debug", "--watch-namespace", NS,
            "--reconcile-resources", "ProcessingJob", f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--healthz-addr=127.0.0.1:{free_port()}"], work / "controller.log", env=env)
        ctl.start()
        token = cp.service_account_token(NS, "pipeline-runner")
        cp.apply_files([HERE.parents[1] / "components" / "ack_dummy_training" / "rbac.yaml"])
        kubeconfig = cp.write_kubeconfig(work / "runner.kubeconfig", token, user="pipeline-runner", namespace=NS)
        model = work / "model.tar.gz"
        with tarfile.open(model, "w:gz") as tar:
            info = tarfile.TarInfo("weights.bin")
            info.size = 100
            tar.addfile(info, io.BytesIO(b"w" * 100))
        model_arg = str(model)
        if mode == "fail":  # in S3: a local model is judged before staging (exit 2, no job); the job must fail
            boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").put_object(
                Bucket="check", Key="in/model.tar.gz", Body=b"not an archive")
            model_arg = "s3://check/in/model.tar.gz"
        argv = [sys.executable, "-m", "dummy_training", "ack", "run", "--model", model_arg,
                "--hyperparameters-json", '{"a": 1}', "--s3-prefix", "s3://check/runs", "--role-arn",
                "arn:aws:iam::123456789012:role/R", "--image-uri", "img:1", "--job-name-part", f"check-{mode}",
                "--job-name-part", "repack", "--endpoint-url", moto_url, "--region", "us-east-1",
                "--kubeconfig", str(kubeconfig), "--poll-interval", "0.5", "--max-poll-interval", "2",
                "--stop-wait-seconds", "60", "--timeout-seconds", "180", "--model-output-dir", str(work / "out")]
        runs = 3 if mode == "rerun" else 1
        for attempt in range(runs):
            proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
            if mode in ("term", "rerun") and attempt == 0:
                from kubernetes import client

                api = client.CustomObjectsApi(cp.api_client())
                for _ in range(240):
                    items = api.list_namespaced_custom_object("sagemaker.services.k8s.aws", "v1alpha1", NS,
                                                              "processingjobs")["items"]
                    if items and (items[0].get("status") or {}).get("processingJobStatus") == "InProgress":
                        break
                    time.sleep(0.5)
                proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=400)
            print(f"== launcher run {attempt + 1}: exit {proc.returncode}")
            print("\n".join(err.strip().splitlines()[-4:]))
            if mode == "rerun" and attempt == 0:
                time.sleep(5)
                gate.set()
        from kubernetes import client

        items = client.CustomObjectsApi(cp.api_client()).list_namespaced_custom_object(
            "sagemaker.services.k8s.aws", "v1alpha1", NS, "processingjobs")["items"]
        print("== resources:", json.dumps([{"name": i["metadata"]["name"], "finalizers": i["metadata"].get(
            "finalizers"), "status": i.get("status")} for i in items], indent=1))
        print("== SageMaker calls:", sm.names())
        print("== SageMaker jobs:", {k: v["ProcessingJobStatus"] for k, v in sm.jobs.items()})
        print(f"== logs in {work}")
        return 0
    finally:
        if ctl is not None:
            ctl.stop()
        cp.stop()
        sm.stop()
        moto.stop()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in MODES:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
