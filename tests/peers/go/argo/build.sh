#!/usr/bin/env bash
# Argo Workflows' workflow-controller and argoexec (github.com/argoproj/argo-workflows/v3) at the version pinned
# in go.mod, for the kfp_cluster tier (by hand: `.ci/peers.sh build argo`; not part of CI's default build).
# Usage: build.sh BIN_DIR
source "$(dirname "$0")/../lib.sh"
here=$(peers_module_dir)
bin=${1:?usage: build.sh BIN_DIR}
mkdir -p "$bin"
cd "$here"
if ! peers_cached argo "$here" "$bin" workflow-controller argoexec; then
  version=$(go list -m -f '{{.Version}}' github.com/argoproj/argo-workflows/v3)
  pkg=github.com/argoproj/argo-workflows/v3
  ldflags="-X $pkg.version=$version -X $pkg.gitTag=$version -X $pkg.buildDate=1970-01-01T00:00:00Z"
  for cmd in workflow-controller argoexec; do
    start=$(date +%s)
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$cmd" "$pkg/cmd/$cmd"
    echo "built $cmd $version in $(( $(date +%s) - start ))s"
  done
  peers_write_stamp argo "$here" "$bin"
fi
for cmd in workflow-controller argoexec; do  # `version` logs config lines on stderr first
  printf '%s: %s\n' "$bin/$cmd" "$("$bin/$cmd" version 2>/dev/null | head -n 1)"
done
