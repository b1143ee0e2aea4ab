#!/usr/bin/env bash
# CI, peers tier: real Kubernetes peers built from pinned Go modules, run on 127.0.0.1 by tests/peers, then a
# real node (kubelet, kube-proxy, scheduler, controller-manager, containerd) running pods of our image.
#
#   .ci/peers.sh build        # build every tests/peers/go/*/build.sh into $DUMMY_TRAINING_PEERS/bin (but argo)
#   .ci/peers.sh build argo   # build only the modules named (argo is opt-in: the by-hand kfp_cluster tier's)
#   .ci/peers.sh [PYTEST...]  # build, then pytest -m peers tests/peers PYTEST..., then pytest -m node tests/peers
#
# The node tier needs root, Debian's containerd, runc, containernetworking-plugins, iptables, conntrack and
# catatonit (installed here when missing), and the image built by .ci/container.sh (dummy-training:<version> in
# podman; .ci/run runs the container tier first): without it the node tests fail, they do not skip.
#
# Each tests/peers/go/<module>/ is one Go module (go.mod/go.sum pin the versions; no upstream source is kept in
# the repository) with a build.sh BIN_DIR that skips the build when its stamp matches the hash of its go.sum.
# DUMMY_TRAINING_PEERS defaults to ~/.cache/dummy-training/peers; the tests find the binaries there too.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
peers=${DUMMY_TRAINING_PEERS:-$HOME/.cache/dummy-training/peers}
export DUMMY_TRAINING_PEERS=$peers
started=$SECONDS
step() { echo "== $* ($((SECONDS - started)) s)"; }

# Go is installed in /usr/local/go on the project's machines, on PATH only for login shells: add it here.
command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "peers.sh: the go command is needed (Go >= 1.25) to build the peers" >&2; exit 3; }
mkdir -p "$peers/bin"
# Modules built only when named: the kfp_cluster tier's (by hand, not in CI).
opt_in=" argo "
modules=()
if [[ ${1:-} == build && $# -gt 1 ]]; then
  modules=("${@:2}")
else
  for build in tests/peers/go/*/build.sh; do
    m=$(basename "$(dirname "$build")")
    [[ $opt_in == *" $m "* ]] || modules+=("$m")
  done
fi
for m in "${modules[@]}"; do
  [[ -f tests/peers/go/$m/build.sh ]] || { echo "peers.sh: no module tests/peers/go/$m" >&2; exit 2; }
  step "build $m ($(go version | cut -d' ' -f3))"
  bash "tests/peers/go/$m/build.sh" "$peers/bin"
done
step "built"
[[ ${1:-} == build ]] && exit 0
step "pytest -m peers tests/peers"
python3 -m pytest -m peers tests/peers "$@"
step "node: Debian packages"
apt_install_missing peers.sh --no-install-recommends containerd runc containernetworking-plugins iptables conntrack \
  catatonit
step "pytest -m node tests/peers (a real node; the image from the container tier)"
# the checkout's package on the host side too (the image was built from it), whatever is pip-installed
PYTHONPATH="$PWD/container${PYTHONPATH:+:$PYTHONPATH}" python3 -m pytest -m node tests/peers "$@"
step "done"
