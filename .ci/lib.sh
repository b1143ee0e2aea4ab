# Shared by the .ci scripts (sourced): install the Debian packages that are missing.
#
#   apt_install_missing WHO [--no-install-recommends] PACKAGE...
#
# Installs only what dpkg does not list as installed (nothing, and no apt-get update, when all are there);
# WHO names the calling script in the one-line error when it is not run as root.
apt_install_missing() {
  local who=$1 opts=()
  shift
  if [ "${1:-}" = --no-install-recommends ]; then opts+=("$1"); shift; fi
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [ "$(id -u)" = 0 ] || { echo "$who: run as root to install ${missing[*]}" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${opts[@]}" "${missing[@]}"
}
