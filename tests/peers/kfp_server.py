"""The Kubeflow Pipelines API server on 127.0.0.1, as a standalone KFP install runs it, for the peers tier.

Plain Python, no pytest (tests/peers/test_kfp_server.py wraps it in fixtures). What runs, each on a free loopback
port and stopped at the end:

- MariaDB from Debian's ``mariadb-server`` (``mariadb-install-db`` in a temporary directory, run as the ``mysql``
  user when this process is root), KFP's default database (driver ``mysql``). Not PostgreSQL: KFP 2.17.0's API
  server with driver ``pgx`` dies at start ("Failed to create default experiment ... column
  \"defaultexperimentid\" does not exist": its stores query unquoted CamelCase columns that GORM created quoted);
- moto's ThreadedMotoServer as the object store (S3 on loopback, path style; the API server makes its bucket);
- the control plane of tests/peers/control_plane.py (etcd + kube-apiserver) with Argo's Workflow CRD and KFP's
  ScheduledWorkflow CRD installed from their own sources (Argo's module at the version ``go version -m
  kfp-apiserver`` names; KFP's module, or ``$KFP_SOURCE_DIR`` for a binary built from a checkout), the
  ``kubeflow`` namespace and its ``pipeline-runner`` ServiceAccount;
- ``$DUMMY_TRAINING_PEERS/bin/kfp-apiserver`` with ``POD_NAMESPACE=kubeflow``, a ``config.json``
  naming the database and the object store, the admin kubeconfig, ``--httpPortFlag`` on 127.0.0.1
  (``--rpcPortFlag`` cannot name a host: see ``_start_apiserver``).

No Argo workflow controller, no ML Metadata server, no kubelet: a run's Workflow is created and stays as the
API server wrote it, which is what the tier reads back.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_plane import ControlPlane, PeerError, Process, binary, free_port, wait_until

NAMESPACE = "kubeflow"
RUNNER_SA = "pipeline-runner"
BUCKET = "mlpipeline"
KFP_MODULE = "github.com/kubeflow/pipelines"
ARGO_MODULE = "github.com/argoproj/argo-workflows/v"
START_TIMEOUT = 120.0


def binary_modules(path: Path) -> dict[str, str]:
    """The modules a Go binary was built from (``go version -m``): path -> version, the main module included
    (``(devel)`` when it was built from a checkout rather than a module version)."""
    out = subprocess.run(["go", "version", "-m", str(path)], check=True, capture_output=True, text=True).stdout
    mods = {}
    for line in out.splitlines():
        parts = line.strip().split("\t")
        if parts[0] in ("mod", "dep") and len(parts) >= 3:
            mods[parts[1]] = parts[2]
        elif parts[0] == "=>" and len(parts) >= 3:  # a replace: the replacement's version
            mods[list(mods)[-1]] = parts[2]
    return mods


def module_dir(module: str, version: str) -> Path:
    """The directory of ``module@version`` in the Go module cache (``go mod download -json``)."""
    info = json.loads(subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], capture_output=True,
                                     text=True, cwd=tempfile.gettempdir()).stdout)
    if info.get("Error") or not info.get("Dir"):
        raise PeerError(f"go mod download {module}@{version}: {info.get('Error')}")
    return Path(info["Dir"])


def kfp_source_dir(mods: dict[str, str]) -> Path:
    """KFP's source tree the API server was built from: the module cache's copy of its version, or
    ``$KFP_SOURCE_DIR`` for a binary built from a checkout."""
    if os.environ.get("KFP_SOURCE_DIR"):
        return Path(os.environ["KFP_SOURCE_DIR"])
    version = mods.get(KFP_MODULE, "")
    if not version.startswith("v"):
        raise PeerError(f"kfp-apiserver was built from a checkout ({KFP_MODULE} {version or '?'}): set "
                        "KFP_SOURCE_DIR to that checkout (its CRDs are installed from there)")
    return module_dir(KFP_MODULE, version)


def crd_files() -> list[Path]:
    """Argo's Workflow CRD (the ``minimal`` CRDs, the ones KFP's manifests install) at the Argo version the API
    server was built with, and KFP's ScheduledWorkflow CRD as KFP's manifests install it (from the API server's
    own source)."""
    mods = binary_modules(binary("kfp-apiserver"))
    argo_module = next((m for m in mods if m.startswith(ARGO_MODULE)), None)
    if argo_module is None:
        raise PeerError(f"kfp-apiserver names no {ARGO_MODULE}* module")
    argo = module_dir(argo_module, mods[argo_module])
    kfp = kfp_source_dir(mods)
    files = [argo / "manifests/base/crds/minimal/argoproj.io_workflows.yaml",
             kfp / "manifests/kustomize/base/pipeline/cluster-scoped/scheduled-workflow-crd.yaml"]
    for path in files:
        if not path.is_file():
            raise PeerError(f"{path} is missing")
    return files


@dataclass
class MariaDB:
    """A throw-away MariaDB server (Debian's ``mariadb-server``), KFP's default database (MySQL protocol), on
    127.0.0.1:``port`` and a unix socket in its own directory; ``--skip-grant-tables``: any user, no password.
    Run as the ``mysql`` user when this process is root (``mariadbd --user``)."""

    user: str = "root"
    port: int = 0
    workdir: Path | None = None
    process: Process | None = None

    def start(self) -> None:
        mariadbd = Path("/usr/sbin/mariadbd")
        if not mariadbd.exists():
            raise PeerError("MariaDB's server is missing: `apt-get install mariadb-server` (as root)")
        self.workdir = Path(tempfile.mkdtemp(prefix="kfp-peer-mariadb-"))
        data = self.workdir / "data"
        data.mkdir()
        as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("mysql")
            for path in (self.workdir, data):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            as_user = ["--user=mysql"]
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", *as_user,
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, cwd=self.workdir)
        self.port = free_port()
        self.process = Process("mariadbd", [
            str(mariadbd), "--no-defaults", f"--datadir={data}", *as_user, "--bind-address=127.0.0.1",
            f"--port={self.port}", f"--socket={self.workdir / 'mysqld.sock'}", f"--pid-file={self.workdir / 'pid'}",
            "--skip-grant-tables", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0",
            "--log-error=" + str(self.workdir / "error.log"),
        ], self.workdir / "mariadbd.log")
        self.process.start()
        wait_until(self.ready, START_TIMEOUT, "mariadbd accepting connections", self.process)

    def ready(self) -> bool:
        out = subprocess.run(["mariadb-admin", "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u",
                              self.user, "ping"], capture_output=True)
        return out.returncode == 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class KfpServer:
    """The API server and what it needs; ``.url`` is its HTTP endpoint (what ``kfp --endpoint`` and
    ``kfp.Client(host=...)`` take). ``control_plane`` must be running."""

    control_plane: ControlPlane
    workdir: Path
    database: MariaDB = field(default_factory=MariaDB)
    moto: Any = None
    moto_host: str = "127.0.0.1"
    moto_port: int = 0
    http_port: int = 0
    rpc_port: int = 0
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        try:
            self._install_cluster_side()
            self.database.start()
            self._start_moto()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        self.database.stop()

    # ------------------------------------------------------------------------------------------------ parts
    def _install_cluster_side(self) -> None:
        cp = self.control_plane
        cp.apply_files(crd_files())
        cp.create_namespace(NAMESPACE)
        cp.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": RUNNER_SA, "namespace": NAMESPACE}})

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        self.moto_port = free_port()
        self.moto = ThreadedMotoServer(ip_address=self.moto_host, port=self.moto_port, verbose=False)
        self.moto.start()

    def config(self) -> dict[str, Any]:
        """The API server's config.json (the keys of backend/src/apiserver/config/config.json)."""
        return {
            "DBDriverName": "mysql",
            "DBConfig": {
                "MySQLConfig": {"DBName": "mlpipeline", "Host": "127.0.0.1", "Port": str(self.database.port),
                                "User": self.database.user, "Password": "", "GroupConcatMaxLen": "4194304"},
                "ConMaxLifeTime": "120s",
            },
            "ObjectStoreConfig": {
                "Host": self.moto_host, "Port": str(self.moto_port), "Secure": "false", "Region": "us-east-1",
                "AccessKey": "testing", "SecretAccessKey": "testing",
                "BucketName": BUCKET, "PipelinePath": "pipelines",
            },
            "InitConnectionTimeout": "30s",
            "DEFAULTPIPELINERUNNERSERVICEACCOUNT": RUNNER_SA,
            "CacheEnabled": "true",
            "CRON_SCHEDULE_TIMEZONE": "UTC",
            "CACHE_IMAGE": "ghcr.io/containerd/busybox",
            "CACHE_NODE_RESTRICTIONS": "false",
        }

    def _start_apiserver(self) -> None:
        conf_dir = self.workdir / "config"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "config.json").write_text(json.dumps(self.config(), indent=2))
        # The ScheduledWorkflow client reads $HOME/.kube/config first, everything else KUBECONFIG.
        home = self.workdir / "home"
        (home / ".kube").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.control_plane.kubeconfig, home / ".kube" / "config")
        self.http_port, self.rpc_port = free_port(), free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KUBECONFIG": str(self.control_plane.kubeconfig),
            "POD_NAMESPACE": NAMESPACE,
            # the minio client's own credential chain is not consulted with static keys, but keep it local
            "AWS_EC2_METADATA_DISABLED": "true",
            # required at start (a Kubernetes service's env); no visualization server runs here
            "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_HOST": "127.0.0.1",
            "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_PORT": str(free_port()),
            **self.apiserver_env(),
        }
        self.process = Process("kfp-apiserver", [
            str(binary("kfp-apiserver")), f"--config={conf_dir}",
            # The HTTP gateway dials the gRPC server at "localhost" + rpcPortFlag (main.go), so the flag can only be
            # ":PORT" (a host in it gives "localhost127.0.0.1:PORT": "name resolver error: produced zero
            # addresses", 503 on every gRPC-backed call): the gRPC port listens on every interface.
            f"--httpPortFlag=127.0.0.1:{self.http_port}", f"--rpcPortFlag=:{self.rpc_port}",
            "--logtostderr=true",
        ], self.workdir / "kfp-apiserver.log", env=env)
        self.process.start()
        wait_until(self.healthy, START_TIMEOUT, "kfp-apiserver /apis/v2beta1/healthz", self.process, interval=0.5)

    def apiserver_env(self) -> dict[str, str]:
        """Extra environment of the API server (kfp_cluster.py: the driver and launcher images)."""
        return {}

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/apis/v2beta1/healthz", timeout=5) as resp:
            return resp.status == 200

    def log_tail(self, lines: int = 40) -> str:
        return self.process.tail(lines) if self.process is not None else ""

    # --------------------------------------------------------------------------------------------- reading
    def workflows(self) -> list[dict[str, Any]]:
        """Every Argo Workflow in the ``kubeflow`` namespace, as the kube-apiserver stores it."""
        raw = self.control_plane.get_raw(f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows")
        return list(json.loads(raw)["items"])

    def workflow_of_run(self, run_id: str) -> dict[str, Any]:
        """The Workflow the API server created for run ``run_id`` (label ``pipeline/runid``)."""
        for wf in self.workflows():
            if wf["metadata"].get("labels", {}).get("pipeline/runid") == run_id:
                return wf
        raise LookupError(f"no Workflow labelled pipeline/runid={run_id}")


@contextmanager
def running(control_plane: ControlPlane, workdir: Path) -> Iterator[KfpServer]:
    server = KfpServer(control_plane, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
