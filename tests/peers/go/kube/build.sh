#!/usr/bin/env bash
# The Kubernetes binaries of the peers tier from k8s.io/kubernetes at the version pinned in go.mod (regenerate
# go.mod/go.sum with gen_go_mod.py VERSION): kube-apiserver for the control plane, and kube-scheduler,
# kube-controller-manager, kubelet and kube-proxy for the node (tests/peers/node.py). One `go build` builds them
# all, sharing the compiled packages. Usage: build.sh BIN_DIR
source "$(dirname "$0")/../lib.sh"
here=$(peers_module_dir)
bin=${1:?usage: build.sh BIN_DIR}
binaries=(kube-apiserver kube-scheduler kube-controller-manager kubelet kube-proxy)
mkdir -p "$bin"
cd "$here"
if ! peers_cached kube "$here" "$bin" "${binaries[@]}"; then
  version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
  minor=$(echo "$version" | cut -d. -f2)
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  pkgs=()
  for b in "${binaries[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  start=$(date +%s)
  # -o DIR/ with several main packages writes each binary into DIR under its own name
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$ldflags" -o "$bin/" "${pkgs[@]}"
  echo "built ${binaries[*]} $version in $(( $(date +%s) - start ))s"
  peers_write_stamp kube "$here" "$bin"
fi
for b in "${binaries[@]}"; do peers_show "$bin" "$b"; done
