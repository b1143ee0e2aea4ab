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
  # The module zip lacks workflow/executor/osspecific/signal_linux.go (a symlink to signal_darwin.go in Argo's
  # repository; module zips drop symlinks), so argoexec fails "undefined: Setpgid" on Linux. Build from a copy of
  # the module with the link restored (a replace in a temporary copy of go.mod; nothing else changes).
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
  cp -r "$(go list -m -f '{{.Dir}}' "$pkg")" "$tmp/argo"
  chmod -R u+w "$tmp/argo"
  ln -s signal_darwin.go "$tmp/argo/workflow/executor/osspecific/signal_linux.go"
  cp go.mod "$tmp/go.mod"
  cp go.sum "$tmp/go.sum"
  echo "replace $pkg => $tmp/argo" >>"$tmp/go.mod"
  for cmd in workflow-controller argoexec; do
    start=$(date +%s)
    CGO_ENABLED=0 go build -modfile="$tmp/go.mod" -trimpath -ldflags "-s -w $ldflags" -o "$bin/$cmd" \
      "$pkg/cmd/$cmd"
    echo "built $cmd $version in $(( $(date +%s) - start ))s"
  done
  peers_write_stamp argo "$here" "$bin"
fi
for cmd in workflow-controller argoexec; do  # `version` logs config lines on stderr first
  printf '%s: %s\n' "$bin/$cmd" "$("$bin/$cmd" version 2>/dev/null | head -n 1)"
done
