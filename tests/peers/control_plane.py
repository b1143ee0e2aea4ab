"""A real Kubernetes control plane on 127.0.0.1: etcd + kube-apiserver, built by .ci/peers.sh from the Go
modules in tests/peers/go/ (the way controller-runtime's envtest runs one for operator tests).

Plain Python, no pytest: tests/peers/conftest.py wraps it in session fixtures, and other tiers (the KFP peer)
reuse it. What runs:

- etcd on free loopback ports, its data in the work dir;
- kube-apiserver on a free loopback port with ``--authorization-mode=RBAC``, a static token file holding an admin
  token (``system:masters``), a service-account signing key (one RSA key, made with ``cryptography``, serves
  both ``--service-account-key-file`` and ``--service-account-signing-key-file``) so TokenRequest works, and
  its own self-signed serving certificate in ``--cert-dir`` (``.ca_file``).

No controller-manager or scheduler: namespaces never finish deleting, garbage collection does not run, pods stay
Pending. Binaries come from ``$DUMMY_TRAINING_PEERS/bin`` (default ``~/.cache/dummy-training/peers/bin``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GO_DIR = Path(__file__).resolve().parent / "go"
ADMIN_USER = "admin"
START_TIMEOUT = 90.0


class PeerError(RuntimeError):
    """A peer binary is missing or a peer did not start."""


def peers_root() -> Path:
    return Path(os.environ.get("DUMMY_TRAINING_PEERS") or Path.home() / ".cache" / "dummy-training" / "peers")


def binary(name: str) -> Path:
    """The path of a peer binary built by ``.ci/peers.sh build``; PeerError (with the fix) when it is missing."""
    path = peers_root() / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PeerError(f"{path} is missing: run `.ci/peers.sh build` first (DUMMY_TRAINING_PEERS={peers_root()})")
    return path


def version_of(name: str, *args: str) -> str:
    """The first line a peer binary prints for ``--version`` (or ``args``)."""
    out = subprocess.run([str(binary(name)), *(args or ("--version",))], capture_output=True, text=True,
                         timeout=30)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def go_module_dir(module_folder: str, module: str) -> Path:
    """The source directory, in the Go module cache, of ``module`` at the version that
    ``tests/peers/go/<module_folder>/go.mod`` resolves (``go mod download -json``'s ``Dir``): where a tier reads
    a peer's own CRDs, RBAC and config rather than copies of them."""
    folder = GO_DIR / module_folder
    version = subprocess.run(["go", "list", "-m", "-f", "{{.Version}}", module], cwd=folder, check=True,
                             capture_output=True, text=True).stdout.strip()
    info = json.loads(subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=folder,
                                     check=True, capture_output=True, text=True).stdout)
    if info.get("Error") or not info.get("Dir"):
        raise PeerError(f"go mod download {module}@{version}: {info.get('Error')}")
    return Path(info["Dir"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """One peer process, its output in ``log``."""

    name: str
    argv: list[str]
    log: Path
    env: Mapping[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=dict(self.env) if self.env is not None else None)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout)


def wait_until(check: Any, timeout: float, what: str, process: Process | None = None, interval: float = 0.2) -> Any:
    """Call ``check()`` until it returns something truthy (returned); PeerError after ``timeout`` seconds or when
    ``process`` exits."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process is not None and not process.running():
            raise PeerError(f"{process.name} exited ({process.popen and process.popen.returncode}) before {what}:\n"
                            f"{process.tail()}")
        try:
            got = check()
            if got:
                return got
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(interval)
    tail = f"\n{process.tail()}" if process is not None else ""
    raise PeerError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last}){tail}")


def _make_service_account_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver in ``workdir``; ``start()`` then use ``.url``, ``.admin_token``, ``.ca_file``,
    ``.kubeconfig``; ``stop()`` ends both (``with ControlPlane(dir) as cp:`` does both)."""

    workdir: Path
    admin_token: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(24)).decode())
    extra_apiserver_args: list[str] = field(default_factory=list)
    #: where the apiserver listens and what it advertises (the ``kubernetes`` Service's endpoint): loopback, or
    #: a node's bridge IP (tests/peers/node.py) so that pods reach it
    host: str = "127.0.0.1"
    #: ServiceAccount admission (pods get a projected token): on for a node, off without one (no controller
    #: creates the ``default`` ServiceAccount then, and admission would refuse every pod)
    service_account_admission: bool = False
    etcd: Process | None = None
    apiserver: Process | None = None
    port: int = 0
    etcd_url: str = ""

    # ---------------------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def cert_dir(self) -> Path:
        return self.workdir / "certs"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-signed serving certificate (with its CA), to verify TLS against."""
        return self.cert_dir / "apiserver.crt"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for the admin (written by ``start``)."""
        return self.workdir / "admin.kubeconfig"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise
        self.write_kubeconfig(self.kubeconfig, self.admin_token, user=ADMIN_USER)

    def stop(self) -> None:
        for proc in (self.apiserver, self.etcd):
            if proc is not None:
                proc.stop()

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        data = self.workdir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        self.etcd = Process("etcd", [
            str(binary("etcd")), "--name", "peers", "--data-dir", str(data),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}", "--initial-cluster", f"peers=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ], self.workdir / "etcd.log")
        self.etcd.start()

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as resp:
                return json.loads(resp.read()).get("health") == "true"

        wait_until(healthy, START_TIMEOUT, "etcd /health", self.etcd)

    def _start_apiserver(self) -> None:
        self.port = free_port()
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        sa_key = self.workdir / "sa.key"
        if not sa_key.exists():
            _make_service_account_key(sa_key)
        # The flags controller-runtime's envtest passes (pkg/internal/testing/controlplane/apiserver.go), with
        # RBAC instead of AlwaysAllow and a static admin token instead of a client certificate.
        self.apiserver = Process("kube-apiserver", [
            str(binary("kube-apiserver")),
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={self.cert_dir}",
            f"--secure-port={self.port}",
            f"--bind-address={self.host}",
            f"--advertise-address={self.host}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            *(() if self.service_account_admission else ("--disable-admission-plugins=ServiceAccount",)),
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--token-auth-file={tokens}",
            "--anonymous-auth=false",
            *self.extra_apiserver_args,
        ], self.workdir / "kube-apiserver.log")
        self.apiserver.start()
        wait_until(lambda: self.get_raw("/readyz") == "ok", START_TIMEOUT, "kube-apiserver /readyz",
                   self.apiserver, interval=0.5)
        # RBAC's bootstrap roles are written by a post-start hook: wait until the admin can use them too.
        wait_until(lambda: self.get_raw("/api/v1/namespaces/default"), START_TIMEOUT, "the default namespace",
                   self.apiserver, interval=0.5)

    # ---------------------------------------------------------------------------------------------- clients
    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def get_raw(self, path: str, token: str | None = None) -> str:
        """GET ``path`` on the apiserver with ``token`` (default: the admin's); the body as text."""
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": f"Bearer {token or self.admin_token}"})
        with urllib.request.urlopen(req, timeout=10, context=self.ssl_context()) as resp:
            return resp.read().decode()

    def configuration(self, token: str | None = None) -> Any:
        """A ``kubernetes.client.Configuration`` for this apiserver with ``token`` (default: the admin's)."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.url
        conf.ssl_ca_cert = str(self.ca_file)
        conf.api_key = {"authorization": token or self.admin_token}
        conf.api_key_prefix = {"authorization": "Bearer"}
        return conf

    def api_client(self, token: str | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` with ``token`` (default: the admin's)."""
        from kubernetes import client

        return client.ApiClient(self.configuration(token))

    def write_kubeconfig(self, path: Path, token: str, *, user: str = "user", namespace: str | None = None) -> Path:
        """A kubeconfig for this apiserver and ``token`` (its context's namespace ``namespace``)."""
        context: dict[str, Any] = {"cluster": "peers", "user": user}
        if namespace:
            context["namespace"] = namespace
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "peers",
            "clusters": [{"name": "peers", "cluster": {"server": self.url,
                                                       "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "peers", "context": context}],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        return path

    # ---------------------------------------------------------------------------------------------- objects
    def apply(self, docs: Iterable[Mapping[str, Any]] | Mapping[str, Any], *, namespace: str | None = None,
              field_manager: str = "dummy-training-tests") -> list[Any]:
        """Server-side apply each document (a dict, or the dicts of a YAML stream) as the admin; a namespaced
        kind without ``metadata.namespace`` goes to ``namespace`` (else ``default``). CRDs are waited for until
        Established. The applied objects (dynamic client ``ResourceInstance``) are returned."""
        from kubernetes import dynamic

        if isinstance(docs, Mapping):
            docs = [docs]
        dyn = dynamic.DynamicClient(self.api_client())
        applied = []
        for doc in docs:
            if not doc:
                continue
            res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            body = json.loads(json.dumps(doc))
            ns = None
            if res.namespaced:
                ns = body["metadata"].get("namespace") or namespace or "default"
                body["metadata"]["namespace"] = ns
            applied.append(res.server_side_apply(body=body, name=body["metadata"]["name"], namespace=ns,
                                                 field_manager=field_manager, force_conflicts=True))
            if doc["kind"] == "CustomResourceDefinition":
                self.wait_for_crd(body["metadata"]["name"])
        return applied

    def apply_files(self, paths: Iterable[Path], *, namespace: str | None = None) -> list[Any]:
        """``apply`` every document of each YAML file in ``paths``."""
        out: list[Any] = []
        for path in paths:
            out += self.apply(list(yaml.safe_load_all(Path(path).read_text())), namespace=namespace)
        return out

    def wait_for_crd(self, name: str, timeout: float = 60.0) -> None:
        from kubernetes import client

        api = client.ApiextensionsV1Api(self.api_client())

        def established() -> bool:
            crd = api.read_custom_resource_definition(name)
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

        wait_until(established, timeout, f"CRD {name} Established")
        # Discovery of the new group lags a little behind Established: wait until it is served.
        group, version = crd_group_version(api.read_custom_resource_definition(name))
        wait_until(lambda: self.get_raw(f"/apis/{group}/{version}"), timeout, f"/apis/{group}/{version}")

    def create_namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def service_account_token(self, namespace: str, name: str, *, create: bool = True,
                              expiration_seconds: int = 3600) -> str:
        """A real token of ServiceAccount ``namespace/name`` (TokenRequest), creating the account first."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        if create:
            self.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": name, "namespace": namespace}})
        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds))
        return str(core.create_namespaced_service_account_token(name, namespace, req).status.token)

    def can_i(self, *, user: str, groups: list[str] | None = None, verb: str, resource: str, group: str = "",
              namespace: str | None = None, subresource: str | None = None, name: str | None = None) -> bool:
        """A SubjectAccessReview (as the admin) of ``user``: is ``verb`` on ``resource`` allowed?"""
        from kubernetes import client

        attrs = client.V1ResourceAttributes(verb=verb, resource=resource, group=group, namespace=namespace,
                                            subresource=subresource, name=name)
        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=groups, resource_attributes=attrs))
        got = client.AuthorizationV1Api(self.api_client()).create_subject_access_review(review)
        return bool(got.status.allowed)


def crd_group_version(crd: Any) -> tuple[str, str]:
    version = next((v.name for v in crd.spec.versions if v.served), crd.spec.versions[0].name)
    return crd.spec.group, version


@contextlib.contextmanager
def running(workdir: Path) -> Iterator[ControlPlane]:
    with ControlPlane(workdir) as cp:
        yield cp
