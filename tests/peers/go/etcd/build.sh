#!/usr/bin/env bash
# etcd (go.etcd.io/etcd/server/v3, the module whose main package is the etcd server) at the version
# pinned in go.mod. Usage: build.sh BIN_DIR
source "$(dirname "$0")/../lib.sh"
here=$(peers_module_dir)
bin=${1:?usage: build.sh BIN_DIR}
mkdir -p "$bin"
cd "$here"
if ! peers_cached etcd "$here" "$bin" etcd; then
  version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$version" \
    -o "$bin/etcd" go.etcd.io/etcd/server/v3
  echo "built etcd $version in $(( $(date +%s) - start ))s"
  peers_write_stamp etcd "$here" "$bin"
fi
peers_show "$bin" etcd
