"""Kubeflow Pipelines 2.17.0's backend on the real node, for the by-hand ``kfp_cluster`` tier.

Plain Python, no pytest (tests/peers/test_kfp_cluster.py wraps it in fixtures). On top of the API server stack of
``kfp_server.py`` (MariaDB, moto as the object store, ``kfp-apiserver``), on the node's control plane:

- ML Metadata's store behind its gRPC service (``mlmd_server.py``, run by the Python of
  ``$DUMMY_TRAINING_PEERS/mlmd-venv``, a venv holding ``ml-metadata==1.17.1``);
- Argo's ``workflow-controller`` (v3.7.17, ``.ci/peers.sh build argo``) on the host with the admin kubeconfig,
  watching ``kubeflow``; its executor image is built from ``argoexec``;
- KFP's ``kfp-persistence-agent`` on the host (it reports the Workflows' states back to the API server);
- three tiny images, each one static binary on an empty base (``localhost/kfp-driver:2.17.0``,
  ``localhost/kfp-launcher:2.17.0``, ``localhost/argoexec:v3.7.17``), built with podman when absent and imported
  into the node's containerd; the API server is given the first two (``V2_DRIVER_IMAGE``/``V2_LAUNCHER_IMAGE``).

In-cluster names. KFP compiles the driver's and launcher's peers as DNS names
(``ml-pipeline.kubeflow.svc.cluster.local:8887``, ``metadata-grpc-service.kubeflow.svc.cluster.local:8080``, the
default object store ``seaweedfs.kubeflow:9000``); the node runs no cluster DNS. So each is a selector-less Service
whose EndpointSlice points at the host process on the node's IP (kube-proxy forwards), and Argo's
``workflowDefaults`` give every pod of every Workflow ``hostAliases`` mapping those names to the Services'
ClusterIPs. Everything else is as KFP's platform-agnostic manifests install it: ``pipeline-runner`` with KFP's own
Role, the ``mlpipeline-minio-artifact`` Secret, Argo's ``workflow-controller-configmap`` (log archiving to the
object store, ``executor`` pull policy), the ``kfp-launcher`` ConfigMap (the default pipeline root
``minio://mlpipeline/v2/artifacts``).

The binaries: ``$DUMMY_TRAINING_PEERS/bin/{kfp-apiserver,kfp-driver,kfp-launcher,kfp-persistence-agent}`` (KFP
2.17.0, built by hand: see tests/peers/README.md) and ``{workflow-controller,argoexec}``. KFP's manifests (the
ScheduledWorkflow CRD, the pipeline-runner Role) come from ``$KFP_SOURCE_DIR`` (that release's source tree).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from control_plane import PeerError, Process, binary, free_port, peers_root, wait_until
from kfp_server import BUCKET, NAMESPACE, KfpServer, module_dir

KFP_VERSION = "2.17.0"
ARGO_VERSION = "v3.7.17"
ARGO_MODULE = "github.com/argoproj/argo-workflows/v3"
ACCESS_KEY = SECRET_KEY = "testing"
PIPELINE_ROOT = f"minio://{BUCKET}/v2/artifacts"  # KFP's default
#: image -> (binary, entrypoint path in the image, user)
IMAGES = {
    f"localhost/kfp-driver:{KFP_VERSION}": ("kfp-driver", "/bin/driver", "65532"),
    f"localhost/kfp-launcher:{KFP_VERSION}": ("kfp-launcher", "/bin/launcher-v2", "65532"),
    f"localhost/argoexec:{ARGO_VERSION}": ("argoexec", "/bin/argoexec", "8737"),
}
DRIVER_IMAGE, LAUNCHER_IMAGE, ARGOEXEC_IMAGE = IMAGES
PERSISTENCE_TOKEN = Path("/var/run/secrets/kubeflow/tokens/persistenceagent-sa-token")


def kfp_source_dir() -> Path:
    src = os.environ.get("KFP_SOURCE_DIR") or str(peers_root() / f"kfp-{KFP_VERSION}")
    path = Path(src)
    if not (path / "manifests/kustomize/base/pipeline").is_dir():
        raise PeerError(f"KFP {KFP_VERSION}'s source tree is needed for its manifests: set KFP_SOURCE_DIR "
                        f"(looked in {path})")
    return path


def build_image(ref: str) -> None:
    """``ref`` in podman's store, built from its binary on an empty base when absent."""
    if subprocess.run(["podman", "image", "exists", ref]).returncode == 0:
        return
    name, path, user = IMAGES[ref]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(binary(name), Path(tmp) / Path(path).name)
        (Path(tmp) / "Containerfile").write_text(
            f"FROM scratch\nCOPY {Path(path).name} {path}\nENV PATH=/bin\nUSER {user}\nENTRYPOINT [\"{path}\"]\n")
        subprocess.run(["podman", "build", "-q", "-t", ref, tmp], check=True, capture_output=True)


@dataclass
class KfpCluster(KfpServer):
    """KFP's backend on a node whose control plane is ``control_plane``; ``node_ip`` is the node's address (the
    host processes listen there for the pods); ``import_image(ref)`` puts a podman image into the node's
    containerd."""

    node_ip: str = ""
    import_image: Callable[[str], None] | None = None
    mlmd: Process | None = None
    mlmd_port: int = 0
    controller: Process | None = None
    agent: Process | None = None
    cluster_ips: dict[str, str] = field(default_factory=dict)
    wrote_token: bool = False

    def start(self) -> None:
        self.moto_host = self.node_ip
        try:
            for ref in IMAGES:
                build_image(ref)
                if self.import_image is not None:
                    self.import_image(ref)
            super().start()
            self._start_mlmd()
            self._services()
            self._start_controller()
            self._start_agent()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in (self.agent, self.controller, self.mlmd):
            if proc is not None:
                proc.stop()
        if self.wrote_token:
            PERSISTENCE_TOKEN.unlink(missing_ok=True)
        super().stop()

    def _start_moto(self) -> None:
        # The pods reach the store by KFP's names (seaweedfs.kubeflow:9000, seaweedfs.kubeflow.svc:9000): moto would
        # take "seaweedfs" for a virtual-hosted bucket ("The specified bucket does not exist"); path style only.
        from moto import settings

        settings.S3_IGNORE_SUBDOMAIN_BUCKETNAME = "true"
        super()._start_moto()

    def apiserver_env(self) -> dict[str, str]:
        return {"V2_DRIVER_IMAGE": DRIVER_IMAGE, "V2_LAUNCHER_IMAGE": LAUNCHER_IMAGE}

    @property
    def s3_url(self) -> str:
        return f"http://{self.node_ip}:{self.moto_port}"

    # ------------------------------------------------------------------------------------------------ parts
    def _install_cluster_side(self) -> None:
        cp = self.control_plane
        argo = module_dir(ARGO_MODULE, ARGO_VERSION) / "manifests/base/crds/minimal"
        kfp = kfp_source_dir() / "manifests/kustomize/base/pipeline"
        cp.apply_files(sorted(argo.glob("argoproj.io_*.yaml")))
        cp.apply_files([kfp / "cluster-scoped/scheduled-workflow-crd.yaml"])
        cp.create_namespace(NAMESPACE)
        cp.apply_files([kfp / f"pipeline-runner-{k}.yaml" for k in ("sa", "role", "rolebinding")],
                       namespace=NAMESPACE)
        # KFP's kfp-launcher ConfigMap as its manifests install it (the default pipeline root).
        cp.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kfp-launcher", "namespace": NAMESPACE},
                  "data": {"defaultPipelineRoot": PIPELINE_ROOT}})
        cp.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mlpipeline-minio-artifact",
                                                                     "namespace": NAMESPACE},
                  "stringData": {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}})

    def _start_mlmd(self) -> None:
        python = peers_root() / "mlmd-venv" / "bin" / "python"
        if not python.exists():
            raise PeerError(f"{python} is missing: python3 -m venv {python.parents[1]} && "
                            f"{python} -m pip install ml-metadata==1.17.1")
        self.mlmd_port = free_port()
        self.mlmd = Process("mlmd", [str(python), str(Path(__file__).with_name("mlmd_server.py")), "--host",
                                     self.node_ip, "--port", str(self.mlmd_port), "--sqlite",
                                     str(self.workdir / "mlmd.sqlite")], self.workdir / "mlmd.log",
                            env={"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"})
        self.mlmd.start()
        wait_until(lambda: "ready" in self.mlmd.tail(5) if self.mlmd else False, 60, "mlmd ready", self.mlmd)

    def _service(self, name: str, ports: dict[int, int]) -> str:
        """A selector-less Service ``name`` (service port -> host port on the node IP); its ClusterIP."""
        from kubernetes import client

        cp = self.control_plane
        cp.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
                  "spec": {"ports": [{"name": f"p{p}", "port": p, "targetPort": t, "protocol": "TCP"}
                                     for p, t in ports.items()]}})
        cp.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": f"{name}-host", "namespace": NAMESPACE,
                               "labels": {"kubernetes.io/service-name": name,
                                          "endpointslice.kubernetes.io/managed-by": "dummy-training-tests"}},
                  "addressType": "IPv4", "endpoints": [{"addresses": [self.node_ip]}],
                  "ports": [{"name": f"p{p}", "port": t, "protocol": "TCP"} for p, t in ports.items()]})
        svc = client.CoreV1Api(cp.api_client()).read_namespaced_service(name, NAMESPACE)
        return str(svc.spec.cluster_ip)

    def _services(self) -> None:
        self.cluster_ips = {
            "ml-pipeline": self._service("ml-pipeline", {8887: self.rpc_port}),
            "metadata-grpc-service": self._service("metadata-grpc-service", {8080: self.mlmd_port}),
            "seaweedfs": self._service("seaweedfs", {9000: self.moto_port}),
            "minio-service": self._service("minio-service", {9000: self.moto_port}),
        }

    def host_aliases(self) -> list[dict[str, Any]]:
        ns = NAMESPACE
        return [{"ip": ip, "hostnames": [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]}
                for name, ip in self.cluster_ips.items()]

    def controller_config(self) -> dict[str, str]:
        """Argo's workflow-controller-configmap: KFP's (log archiving to the object store, the executor's pull
        policy and security context) plus ``hostAliases`` in ``workflowDefaults``."""
        repo = {"archiveLogs": True, "s3": {
            "endpoint": f"seaweedfs.{NAMESPACE}.svc:9000", "bucket": BUCKET, "insecure": True,
            "keyFormat": "private-artifacts/{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}",
            "accessKeySecret": {"name": "mlpipeline-minio-artifact", "key": "accesskey"},
            "secretKeySecret": {"name": "mlpipeline-minio-artifact", "key": "secretkey"}}}
        executor = {"imagePullPolicy": "IfNotPresent", "securityContext": {
            "runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}}}
        defaults = {"spec": {"hostAliases": self.host_aliases()}}
        return {"artifactRepository": yaml.safe_dump(repo), "executor": yaml.safe_dump(executor),
                "workflowDefaults": yaml.safe_dump(defaults),
                "metricsConfig": yaml.safe_dump({"enabled": False}),
                "telemetryConfig": yaml.safe_dump({"enabled": False})}

    def _start_controller(self) -> None:
        self.control_plane.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "workflow-controller-configmap", "namespace": NAMESPACE},
                                  "data": self.controller_config()})
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir / "home"),
               "LEADER_ELECTION_DISABLE": "true", "ARGO_NAMESPACE": NAMESPACE}
        self.controller = Process("workflow-controller", [
            str(binary("workflow-controller")), f"--kubeconfig={self.control_plane.kubeconfig}",
            "--configmap=workflow-controller-configmap", f"--executor-image={ARGOEXEC_IMAGE}",
            "--executor-image-pull-policy=IfNotPresent", f"--namespace={NAMESPACE}", "--namespaced",
            f"--managed-namespace={NAMESPACE}",
            "--workflow-workers=4", "--pod-cleanup-workers=2",
        ], self.workdir / "workflow-controller.log", env=env)
        self.controller.start()
        wait_until(lambda: "Starting Workflow Controller" in self.controller.tail(200) if self.controller else 0,
                   60, "workflow-controller started", self.controller)

    def _start_agent(self) -> None:
        if not PERSISTENCE_TOKEN.exists():  # read at start; a single-user API server checks no token
            PERSISTENCE_TOKEN.parent.mkdir(parents=True, exist_ok=True)
            PERSISTENCE_TOKEN.write_text(self.control_plane.service_account_token(NAMESPACE,
                                                                                  "ml-pipeline-persistenceagent"))
            self.wrote_token = True
        self.agent = Process("kfp-persistence-agent", [
            str(binary("kfp-persistence-agent")), f"--kubeconfig={self.control_plane.kubeconfig}",
            f"--namespace={NAMESPACE}", "--mlPipelineAPIServerName=127.0.0.1",
            f"--mlPipelineServiceHttpPort={self.http_port}", f"--mlPipelineServiceGRPCPort={self.rpc_port}",
            "--ttlSecondsAfterWorkflowFinish=86400", "--numWorker=2", "--logtostderr=true",
        ], self.workdir / "persistence-agent.log",
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir / "home"),
                 "KUBECONFIG": str(self.control_plane.kubeconfig)})
        self.agent.start()
        time.sleep(1)
        if not self.agent.running():
            raise PeerError(f"kfp-persistence-agent exited:\n{self.agent.tail()}")

    # --------------------------------------------------------------------------------------------- reading
    def logs(self) -> str:
        """The tails of every host process's log (for a failing test's message)."""
        out = []
        for proc in (self.process, self.controller, self.agent, self.mlmd):
            if proc is not None:
                out.append(f"-- {proc.name}:\n{proc.tail(25)}")
        try:
            for pod in self.pods():
                for c in pod["status"].get("containerStatuses", []):
                    code = (c.get("state", {}).get("terminated") or {}).get("exitCode")
                    if code:
                        log = self.pod_log(pod["metadata"]["name"], c["name"]).splitlines()[-15:]
                        out.append(f"-- pod {pod['metadata']['name']} {c['name']} exit {code}:\n" + "\n".join(log))
        except Exception as exc:  # noqa: BLE001 - a diagnostic
            out.append(f"-- pods: {exc}")
        return "\n".join(out)

    def pods(self) -> list[dict[str, Any]]:
        return list(json.loads(self.control_plane.get_raw(f"/api/v1/namespaces/{NAMESPACE}/pods"))["items"])

    def pod_log(self, name: str, container: str = "main") -> str:
        return self.control_plane.get_raw(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/log?container={container}")

    def store(self) -> dict[str, Any]:
        """ML Metadata's contents (artifacts, executions, events), read through its gRPC service."""
        python = peers_root() / "mlmd-venv" / "bin" / "python"
        out = subprocess.run([str(python), str(Path(__file__).with_name("mlmd_server.py")), "--dump",
                              f"{self.node_ip}:{self.mlmd_port}"], check=True, capture_output=True, text=True,
                             timeout=120)
        return dict(json.loads(out.stdout))
