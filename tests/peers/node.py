"""A real single-node Kubernetes v1.35 on this machine: the control plane of control_plane.py plus a node that runs
real pods (containerd + runc + CNI bridge, kubelet, kube-proxy, kube-scheduler, kube-controller-manager).

Plain Python, no pytest: tests/peers/conftest.py wraps it in the session fixtures ``node`` and ``node_image``;
other tiers (the launchers in pods, KFP's backend) reuse it. Needs root, the binaries built by
``.ci/peers.sh build`` (tests/peers/go/kube) and Debian's containerd, runc, containernetworking-plugins, iptables,
conntrack and catatonit (``.ci/peers.sh`` installs them).

Interface (kept stable; other branches build on it)::

    with Node(workdir) as node:                 # or node.start() ... node.stop()
        node.ip                                 # "10.217.0.1": the node's InternalIP (bridge dtnode0), reachable
                                                # from pods and from the host; servers the pods must reach listen here
        node.control_plane                      # the ControlPlane (url https://10.217.0.1:<port>, admin token, ...)
        node.kubeconfig                         # admin kubeconfig (Path)
        node.api_client()                       # kubernetes ApiClient (admin); node.core: CoreV1Api
        node.import_image(ref)                  # podman save REF | ctr import: pods use it with imagePullPolicy
                                                # Never/IfNotPresent; returns the name pods should use
        node.create_namespace(prefix) -> name   # a fresh namespace, deleted (and waited for) at stop
        node.host_dir(name, uid=1000) -> Path   # a host directory owned by uid, for hostPath volumes
        node.run_pod(ns, pod_dict, timeout=...) # create the pod and wait until it terminated: the V1Pod
        node.wait_pod(ns, name, predicate, timeout, what) -> V1Pod
        node.wait_running(ns, name, timeout)    # until its containers run
        node.terminated(pod, container=None)    # V1ContainerStateTerminated of a container (the first)
        node.log(ns, name, container=None)      # the container's log (what `kubectl logs` shows)

Only one node may run on a machine at a time (fixed bridge names, the kubelet's fixed paths): ``start`` takes
``flock`` on ``/tmp/dt-node.lock`` (waiting for another session's node to end, at most
``$DUMMY_TRAINING_NODE_LOCK_WAIT`` seconds, default 1200, then PeerError naming the holder) and ``stop`` releases
it. pytest-timeout counts that wait in the first test's setup: mark node tests ``pytest.mark.timeout(
node.TEST_TIMEOUT)``.

What it sets up, and ``stop`` removes (so that a second run, and podman, still work):
- bridge ``dtnode0`` 10.217.0.1/24 (the node IP; the kernel has no ``dummy`` link type and the kubelet refuses
  loopback) and the pods' CNI bridge ``dtcni0`` 10.217.1.0/24 (bridge + host-local, leases in the work dir);
- containerd on a private socket, root and state (``restrict_oom_score_adj``: root lacks CAP_SYS_RESOURCE;
  cgroupfs; overlayfs; CNI from /usr/lib/cni; netns under its state dir), a sandbox image made here from
  Debian's static ``catatonit -P`` (nothing is pulled), images imported with ``ctr``;
- the apiserver on the node IP (``--advertise-address`` there, so that in-cluster clients reach it through the
  ``kubernetes`` Service), ServiceAccount admission on, ``--kubelet-preferred-address-types=InternalIP``;
- kubelet (cgroup v1 accepted, cgroupfs, swap allowed, no resolv.conf, low eviction thresholds, image GC off),
  kube-proxy (iptables), scheduler, controller-manager (namespaces delete, ServiceAccounts get tokens and
  kube-root-ca.crt);
- teardown also removes what they write outside the work dir: /var/lib/kubelet, /var/log/pods,
  /var/log/containers, /run/containerd (shim sockets) when they were not there before, iptables ``KUBE-*`` chains
  (filter/nat/mangle, IPv4 and IPv6), ``/kubepods`` cgroups, the bridges; sysctls are restored.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from control_plane import ControlPlane, PeerError, Process, binary, free_port, wait_until

LOCK_FILE = Path("/tmp/dt-node.lock")
NODE_NAME = "dt-node"
NODE_BRIDGE, NODE_IP, NODE_CIDR = "dtnode0", "10.217.0.1", "10.217.0.1/24"
CNI_BRIDGE, POD_CIDR, POD_GATEWAY = "dtcni0", "10.217.1.0/24", "10.217.1.1"
SERVICE_CIDR = "10.0.0.0/24"
CNI_NETWORK = "dtnode"
SANDBOX_IMAGE = "dt.local/pause:catatonit"
STATE_DIR = Path("/run/dt-node")  # short: containerd's socket paths must stay under 108 bytes
DEBIAN_TOOLS = {"containerd": "containerd", "ctr": "containerd", "runc": "runc", "iptables": "iptables",
                "conntrack": "conntrack", "catatonit": "catatonit"}
CNI_BIN_DIR = Path("/usr/lib/cni")
#: Outside the work dir: removed at stop when start did not find them.
FIXED_PATHS = [Path("/var/lib/kubelet"), Path("/var/log/pods"), Path("/var/log/containers"),
               Path("/run/containerd")]
SYSCTLS = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
START_TIMEOUT = 120.0
#: How long ``start`` waits for another session's node to end (seconds; the environment variable overrides).
LOCK_WAIT_ENV = "DUMMY_TRAINING_NODE_LOCK_WAIT"
LOCK_WAIT = 1200.0
#: A timeout for the tests of a node tier (pytest.mark.timeout): the first one's setup may wait LOCK_WAIT for the
#: lock, then brings the node up and imports the image (about a minute).
TEST_TIMEOUT = LOCK_WAIT + 300


def _run(*argv: str, check: bool = True, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)
    if check and out.returncode != 0:
        raise PeerError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
    return out


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the node (empty when nothing): root, the Debian tools, CNI plugins."""
    missing = [] if os.geteuid() == 0 else ["root (the node needs uid 0)"]
    missing += [f"{tool} (Debian package {pkg})" for tool, pkg in DEBIAN_TOOLS.items() if not shutil.which(tool)]
    missing += [f"{CNI_BIN_DIR}/{p} (containernetworking-plugins)" for p in ("bridge", "host-local", "loopback")
                if not (CNI_BIN_DIR / p).exists()]
    return missing


def sandbox_image_tar(path: Path) -> Path:
    """A one-layer docker-archive holding Debian's static ``catatonit`` as ``/pause`` (run as ``-P``: the pause
    process every pod sandbox needs; nothing can be pulled here)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(shutil.which("catatonit") or "/usr/bin/catatonit", arcname="pause")
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause", "-P"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [SANDBOX_IMAGE], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in ((config_name, config), ("layer.tar", layer_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@dataclass
class Node:
    """The node and its control plane in ``workdir``: ``start()``/``stop()`` (or ``with``); see the module doc."""

    workdir: Path
    ip: str = NODE_IP
    control_plane: ControlPlane | None = None
    processes: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _lock: Any = None
    _preexisting: set[Path] = field(default_factory=set)
    _sysctls: dict[str, str] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)
    _images: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None
        return self.control_plane.kubeconfig

    @property
    def containerd_socket(self) -> Path:
        return STATE_DIR / "containerd.sock"

    def start(self) -> None:
        missing = missing_prerequisites()
        if missing:
            raise PeerError("the node needs: " + "; ".join(missing) + " (.ci/peers.sh installs the packages)")
        for name in ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"):
            binary(name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        LOCK_FILE.touch(exist_ok=True)
        self._lock = LOCK_FILE.open("r")
        t0 = time.monotonic()
        self._wait_for_lock()
        self.timings["lock_wait"] = time.monotonic() - t0
        try:
            self._cleanup_leftovers()
            self._preexisting = {p for p in FIXED_PATHS if p.exists()}
            t0 = time.monotonic()
            self._network()
            self._containerd()
            self.timings["containerd"] = time.monotonic() - t0
            t0 = time.monotonic()
            self.control_plane = ControlPlane(self.workdir / "control-plane", host=self.ip,
                                              service_account_admission=True, extra_apiserver_args=[
                                                  "--kubelet-preferred-address-types=InternalIP"])
            self.control_plane.start()
            self.timings["control_plane"] = time.monotonic() - t0
            t0 = time.monotonic()
            self._controllers()
            self._kubelet()
            self._kube_proxy()
            self._wait_ready()
            self.timings["node_ready"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    def _wait_for_lock(self) -> None:
        """``flock`` ``LOCK_FILE``: another session's node runs meanwhile; PeerError naming its holder after
        ``$DUMMY_TRAINING_NODE_LOCK_WAIT`` seconds (default LOCK_WAIT)."""
        raw = os.environ.get(LOCK_WAIT_ENV, "").strip()
        wait = float(raw) if raw.replace(".", "", 1).isdigit() else LOCK_WAIT
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock.close()
                    self._lock = None
                    raise PeerError(f"another node has held {LOCK_FILE} for more than {wait:.0f} s ({LOCK_WAIT_ENV}):"
                                    f" {_lock_holders()}") from None
                time.sleep(1)

    def stop(self) -> None:
        try:
            if self.control_plane is not None and self.control_plane.apiserver is not None \
                    and self.control_plane.apiserver.running():
                with contextlib.suppress(Exception):
                    self._delete_namespaces()
            for proc in reversed(self.processes):
                proc.stop()
            self.processes.clear()
            self._teardown_containers()
            if self.control_plane is not None:
                self.control_plane.stop()
            t0 = time.monotonic()
            self._cleanup_leftovers()
            self.timings["cleanup"] = time.monotonic() - t0
            with contextlib.suppress(OSError):
                (self.workdir / "timings.json").write_text(json.dumps(self.timings, indent=1))
        finally:
            if self._lock is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None

    # ------------------------------------------------------------------------------------------------ network
    def _network(self) -> None:
        for key, value in SYSCTLS.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            if path.exists():
                self._sysctls[key] = path.read_text().strip()
                path.write_text(value)
        _run("ip", "link", "add", NODE_BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", NODE_CIDR, "dev", NODE_BRIDGE)
        _run("ip", "link", "set", NODE_BRIDGE, "up")

    # ------------------------------------------------------------------------------------------------ containerd
    def _containerd(self) -> None:
        root = self.workdir / "containerd"
        cni_conf = self.workdir / "cni"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-dtnode.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": CNI_NETWORK,
            "plugins": [
                {"type": "bridge", "bridge": CNI_BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(self.workdir / "cni-ipam"),
                          "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "loopback"},
            ],
        }, indent=1))
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "containerd.toml"
        config.write_text(f"""version = 2
root = "{root}"
state = "{STATE_DIR / 'state'}"
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{STATE_DIR / 'containerd.sock.ttrpc'}"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  sandbox_image = "{SANDBOX_IMAGE}"
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
""")
        proc = Process("containerd", ["containerd", "--config", str(config)], self.workdir / "containerd.log")
        proc.start()
        self.processes.append(proc)
        wait_until(lambda: self._ctr("version", check=False).returncode == 0, START_TIMEOUT, "containerd", proc)
        tar = sandbox_image_tar(self.workdir / "pause.tar")
        self._ctr("images", "import", "--no-unpack", str(tar))
        # the sandbox must never be garbage-collected or pulled: the CRI pins the sandbox image itself

    def _ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run("ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args, check=check,
                    timeout=timeout)

    def import_image(self, ref: str, engine: str = "podman") -> str:
        """``podman save`` ``ref`` and import it into the node's containerd (once per ref); the name to use in
        a pod spec (``ref`` itself: the CRI normalizes ``name:tag`` to ``docker.io/library/name:tag``)."""
        if ref in self._images:
            return ref
        normalized = ref if "/" in ref.split(":")[0] else f"docker.io/library/{ref}"
        tar = self.workdir / "image.tar"
        t0 = time.monotonic()
        _run(engine, "save", "--format", "docker-archive", "-o", str(tar), normalized, timeout=600)
        self.timings[f"save {ref}"] = time.monotonic() - t0
        t0 = time.monotonic()
        self._ctr("images", "import", "--no-unpack", str(tar), timeout=600)
        tar.unlink()
        self.timings[f"import {ref}"] = time.monotonic() - t0
        listed = self._ctr("images", "ls", "-q").stdout.split()
        if normalized not in listed:
            raise PeerError(f"{normalized} not in containerd after import: {listed}")
        self._images.add(ref)
        return ref

    # ------------------------------------------------------------------------------------------------ kube
    def _controllers(self) -> None:
        cp = self.control_plane
        assert cp is not None
        sa_key = cp.workdir / "sa.key"
        self._start("kube-controller-manager", [
            f"--kubeconfig={cp.kubeconfig}", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            f"--service-account-private-key-file={sa_key}", f"--root-ca-file={cp.ca_file}",
            "--use-service-account-credentials=false", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle",
            "--leader-elect=false", "--concurrent-gc-syncs=5", "-v=1"])
        self._start("kube-scheduler", [
            f"--kubeconfig={cp.kubeconfig}", f"--authentication-kubeconfig={cp.kubeconfig}",
            f"--authorization-kubeconfig={cp.kubeconfig}", "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}", "--leader-elect=false", "-v=1"])

    def _kubelet(self) -> None:
        cp = self.control_plane
        assert cp is not None
        root = self.workdir / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "kubelet.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": self.ip, "port": 10250, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False, "resolvConf": "",
            "clusterDomain": "cluster.local", "clusterDNS": [],
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "evictionPressureTransitionPeriod": "5s",
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99, "imageMinimumGCAge": "1000h",
            "serializeImagePulls": False, "syncFrequency": "5s", "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s", "shutdownGracePeriod": "0s", "protectKernelDefaults": False,
            "makeIPTablesUtilChains": True, "localStorageCapacityIsolation": True,
            "podPidsLimit": -1, "maxPods": 30,
        }))
        self._start("kubelet", [
            f"--config={config}", f"--kubeconfig={cp.kubeconfig}", f"--root-dir={root}",
            f"--cert-dir={root / 'pki'}", f"--node-ip={self.ip}", f"--hostname-override={NODE_NAME}",
            "--v=1"])

    def _kube_proxy(self) -> None:
        cp = self.control_plane
        assert cp is not None
        self._start("kube-proxy", [
            f"--kubeconfig={cp.kubeconfig}", "--proxy-mode=iptables", f"--hostname-override={NODE_NAME}",
            f"--cluster-cidr={POD_CIDR}", "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
            f"--metrics-bind-address=127.0.0.1:{free_port()}", f"--healthz-bind-address=127.0.0.1:{free_port()}",
            "--v=1"])

    def _start(self, name: str, args: list[str]) -> Process:
        proc = Process(name, [str(binary(name)), *args], self.workdir / f"{name}.log")
        proc.start()
        self.processes.append(proc)
        return proc

    def _wait_ready(self) -> None:
        kubelet = next(p for p in self.processes if p.name == "kubelet")

        def ready() -> bool:
            node = self.core.read_node(NODE_NAME)
            return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

        wait_until(ready, START_TIMEOUT, f"node {NODE_NAME} Ready", kubelet, interval=0.5)

        # the default ServiceAccount (controller-manager) must exist before pods can be admitted
        wait_until(lambda: self.core.read_namespaced_service_account("default", "default"), START_TIMEOUT,
                   "ServiceAccount default/default")

    # ------------------------------------------------------------------------------------------------ clients
    def api_client(self, token: str | None = None) -> Any:
        assert self.control_plane is not None
        return self.control_plane.api_client(token)

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    def create_namespace(self, prefix: str = "t") -> str:
        """A fresh namespace ``<prefix>-<n>`` whose ``default`` ServiceAccount exists; deleted at ``stop``."""
        assert self.control_plane is not None
        name = f"{prefix}-{len(self._namespaces) + 1}-{os.urandom(2).hex()}"
        self.control_plane.create_namespace(name)
        self._namespaces.append(name)
        wait_until(lambda: self.core.read_namespaced_service_account("default", name), 60,
                   f"ServiceAccount {name}/default")
        return name

    def host_dir(self, name: str, uid: int = 1000, gid: int | None = None) -> Path:
        """A directory in the work dir owned by ``uid`` (the image's user), for a ``hostPath`` volume."""
        path = self.workdir / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, uid, uid if gid is None else gid)
        self.workdir.chmod(0o755)
        (self.workdir / "volumes").chmod(0o755)
        return path

    def wait_pod(self, namespace: str, name: str, predicate: Callable[[Any], bool], timeout: float,
                 what: str) -> Any:
        """Read the pod until ``predicate(pod)``; the pod. PeerError (with its status and events) on timeout."""
        last: list[Any] = [None]

        def check() -> Any:
            pod = self.core.read_namespaced_pod(name, namespace)
            last[0] = pod
            return pod if predicate(pod) else None

        try:
            return wait_until(check, timeout, f"pod {namespace}/{name} {what}", interval=0.5)
        except PeerError as exc:
            raise PeerError(f"{exc}\nstatus: {last[0].status if last[0] else None}\n"
                            f"events: {self.events(namespace, name)}") from None

    def events(self, namespace: str, name: str) -> list[str]:
        with contextlib.suppress(Exception):
            evs = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
            return [f"{e.reason}: {e.message}" for e in evs]
        return []

    def run_pod(self, namespace: str, pod: dict[str, Any], timeout: float = 300) -> Any:
        """Create ``pod`` in ``namespace`` and wait until it is Succeeded or Failed; the V1Pod."""
        self.core.create_namespaced_pod(namespace, pod)
        return self.wait_pod(namespace, pod["metadata"]["name"],
                             lambda p: p.status.phase in ("Succeeded", "Failed"), timeout, "to terminate")

    def wait_running(self, namespace: str, name: str, timeout: float = 120) -> Any:
        return self.wait_pod(namespace, name, lambda p: bool(p.status.container_statuses) and all(
            s.state.running for s in p.status.container_statuses), timeout, "to run")

    @staticmethod
    def terminated(pod: Any, container: str | None = None) -> Any:
        """The ``terminated`` state of ``container`` (default: the first) in ``pod``; None if not terminated."""
        statuses = pod.status.container_statuses or []
        status = next((s for s in statuses if container is None or s.name == container), None)
        return status.state.terminated if status is not None else None

    def log(self, namespace: str, name: str, container: str | None = None) -> str:
        kwargs = {"container": container} if container else {}
        return str(self.core.read_namespaced_pod_log(name, namespace, **kwargs))

    # ------------------------------------------------------------------------------------------------ teardown
    def _delete_namespaces(self, timeout: float = 90) -> None:
        from kubernetes import client

        for ns in self._namespaces:
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespace(ns)

        def gone() -> bool:
            names = {n.metadata.name for n in self.core.list_namespace().items}
            return not names & set(self._namespaces)

        # pods in other namespaces (default, a tier's own) go too, so that the kubelet stops their sandboxes
        for pod in self.core.list_pod_for_all_namespaces().items:
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        wait_until(lambda: gone() and not self.core.list_pod_for_all_namespaces().items, timeout,
                   "the test namespaces and pods to be deleted")
        self._namespaces.clear()

    def _teardown_containers(self) -> None:
        """Kill what containerd still runs (tasks, shims) and remove its netns mounts, then containerd."""
        containerd = next((p for p in self.processes if p.name == "containerd"), None)
        if self.containerd_socket.exists() and self._ctr("version", check=False).returncode == 0:
            for cid in self._ctr("tasks", "ls", "-q", check=False).stdout.split():
                self._ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
            time.sleep(0.5)
            for cid in self._ctr("containers", "ls", "-q", check=False).stdout.split():
                self._ctr("tasks", "delete", "-f", cid, check=False)
                self._ctr("containers", "delete", cid, check=False)
        if containerd is not None:
            containerd.stop()

    def _cleanup_leftovers(self) -> None:
        """Remove what a node (this one, or one a killed session left) put outside its work dir."""
        # shims of a killed session, and anything still running in our cgroups
        for cg in Path("/sys/fs/cgroup").glob("*/kubepods"):
            for procs in sorted(cg.rglob("cgroup.procs"), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError, ValueError):
                    for pid in procs.read_text().split():
                        os.kill(int(pid), 9)
        if STATE_DIR.exists():
            for mount in _mounts_under(STATE_DIR):
                _run("umount", "-l", mount, check=False)
            shutil.rmtree(STATE_DIR, ignore_errors=True)
        # the workdir's own mounts (kubelet volumes, overlay snapshots)
        for mount in _mounts_under(self.workdir):
            _run("umount", "-l", mount, check=False)
        for path in FIXED_PATHS:
            if path.exists() and path not in self._preexisting:
                for mount in _mounts_under(path):
                    _run("umount", "-l", mount, check=False)
                shutil.rmtree(path, ignore_errors=True)
        for path in ("/var/lib/cni/results", "/var/lib/cni/networks"):
            for leftover in Path(path).glob(f"{CNI_NETWORK}*"):
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
        # libcni's cache of the CRI's loopback network (podman's entries carry no K8S_POD_ arguments)
        for cached in Path("/var/lib/cni/results").glob("cni-loopback-*"):
            with contextlib.suppress(OSError):
                if '"K8S_POD_' in cached.read_text():
                    cached.unlink()
        _remove_kube_chains()
        for cg in Path("/sys/fs/cgroup").glob("*/kubepods"):
            for d in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                cg.rmdir()
        for bridge in (CNI_BRIDGE, NODE_BRIDGE):
            if _run("ip", "link", "show", bridge, check=False).returncode == 0:
                _run("ip", "link", "delete", bridge, check=False)
        for key, value in self._sysctls.items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key.replace(".", "/")).write_text(value)
        self._sysctls.clear()


def _lock_holders() -> str:
    """Who holds ``LOCK_FILE`` (pid and command line), from /proc/locks."""
    try:
        inode = LOCK_FILE.stat().st_ino
        pids = {line.split()[4] for line in Path("/proc/locks").read_text().splitlines()
                if len(line.split()) > 5 and line.split()[5].endswith(f":{inode}")}
    except OSError:
        return "unknown"
    out = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            out.append(f"pid {pid}: {cmd[:160]}")
    return "; ".join(out) or "unknown"


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1].encode().decode("unicode_escape")
            if target.startswith(prefix) or target == str(path):
                found.append(target)
    return sorted(found, key=len, reverse=True)


def _remove_kube_chains() -> None:
    """Delete every rule jumping to a ``KUBE-*`` chain, then the chains (filter, nat, mangle; v4 and v6)."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("filter", "nat", "mangle"):
            out = _run(tool, "-w", "-t", table, "-S", check=False)
            if out.returncode != 0:
                continue
            lines = out.stdout.splitlines()
            for line in lines:
                if line.startswith("-A ") and "KUBE-" in line and not line.split()[1].startswith("KUBE-"):
                    _run(tool, "-w", "-t", table, "-D", *shlex.split(line[3:]), check=False)
            chains = [ln.split()[1] for ln in lines if ln.startswith("-N KUBE-")]
            for chain in chains:
                _run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(tool, "-w", "-t", table, "-X", chain, check=False)
