#!/usr/bin/env bash
# kube-apiserver from k8s.io/kubernetes at the version pinned in go.mod (regenerate go.mod/go.sum with
# gen_go_mod.py VERSION). Usage: build.sh BIN_DIR
source "$(dirname "$0")/../lib.sh"
here=$(peers_module_dir)
bin=${1:?usage: build.sh BIN_DIR}
mkdir -p "$bin"
cd "$here"
if ! peers_cached kube "$here" "$bin" kube-apiserver; then
  version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
  minor=$(echo "$version" | cut -d. -f2)
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$ldflags" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  echo "built kube-apiserver $version in $(( $(date +%s) - start ))s"
  peers_write_stamp kube "$here" "$bin"
fi
peers_show "$bin" kube-apiserver
