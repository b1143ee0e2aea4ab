# Shared by tests/peers/go/*/build.sh (sourced, not run). Each build.sh is one Go module:
#   build.sh BIN_DIR
# builds its binaries into BIN_DIR unless BIN_DIR/.stamp-<module> holds the hash of the module's
# go.mod + go.sum + build.sh (then it only prints them), and prints each binary's path and --version.
set -euo pipefail

peers_module_dir() { cd "$(dirname "${BASH_SOURCE[1]}")" && pwd; }

# peers_stamp_hash DIR: hash of what pins the build.
peers_stamp_hash() {
  cat "$1/go.mod" "$1/go.sum" "$1/build.sh" | sha256sum | cut -d' ' -f1
}

# peers_cached NAME DIR BIN_DIR BINARY...: true when the stamp matches and every binary exists.
peers_cached() {
  local name=$1 dir=$2 bin=$3
  shift 3
  local stamp="$bin/.stamp-$name"
  [[ -f $stamp && "$(cat "$stamp")" == "$(peers_stamp_hash "$dir")" ]] || return 1
  local b
  for b in "$@"; do [[ -x "$bin/$b" ]] || return 1; done
}

peers_write_stamp() { peers_stamp_hash "$2" >"$3/.stamp-$1"; }

# peers_show BIN_DIR BINARY [VERSION-ARGS...]
peers_show() {
  local bin=$1 b=$2
  shift 2
  local args=("$@")
  [[ ${#args[@]} -gt 0 ]] || args=(--version)
  printf '%s: %s\n' "$bin/$b" "$("$bin/$b" "${args[@]}" 2>&1 | head -n 1)"
}
