#!/usr/bin/env bash
# The newcomer check: what someone who just cloned the repository gets from the README's first screen.
#
# Clones this checkout's HEAD (committed work only) into an empty temp folder (nothing beside it: no ../shared),
# makes a fresh venv, and runs the two commands of README.md's first ```bash block exactly as written, in a
# clean environment (fresh HOME, no PYTHONPATH, none of our variables). Fails unless the demo prints its
# decision and the tests end with no failure, no error and no skip (ALLOWED_SKIPS below lists the exceptions:
# none). Prints the counts. Installs from the package index: several minutes.
#
#   .ci/newcomer.sh            PYTHON=python3.12 .ci/newcomer.sh            NEWCOMER_KEEP=1 .ci/newcomer.sh
set -euo pipefail

# Test ids as JUnit XML names them (tests.container.test_dockerfile::test_hadolint_is_clean), or their prefixes,
# allowed to skip. A skip whose reason says something is missing or not installed
# fails even when listed: a newcomer must not lose tests for want of something.
ALLOWED_SKIPS=()
MISSING_RE='not installed|not found|missing|no module|unavailable|cannot import|requires'

PYTHON=${PYTHON:-python3}
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
head=$(git -C "$src" rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/newcomer.XXXXXX")
clone="$work/alone/repo"  # alone/ holds nothing but the clone
venv="$work/venv"
home="$work/home"
mkdir -p "$work/alone" "$home"
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] || [ -n "${NEWCOMER_KEEP:-}" ]; then
    echo "newcomer: kept $work (logs: demo.log, test.log, junit.xml)" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

start=$SECONDS
phase() { printf '== %s (%ss)\n' "$1" "$((SECONDS - start))"; }
fail() { echo "newcomer: FAILED: $*" >&2; exit 1; }

phase "clone $head"
if [ -n "$(git -C "$src" status --porcelain --untracked-files=no)" ]; then
  echo "newcomer: note: uncommitted changes in $src are not part of this check"
fi
git clone -q --no-hardlinks "$src" "$clone"
git -C "$clone" checkout -q --detach "$head"
[ "$(ls -A "$work/alone")" = "repo" ] || fail "the clone is not alone in $work/alone"

# README.md's first ```bash block: its command lines (comments and blank lines left out), exactly two.
mapfile -t commands < <(awk '/^```bash[[:space:]]*$/ {inside = 1; next} inside && /^```/ {exit}
                             inside && NF && $1 !~ /^#/ {print}' "$clone/README.md")
[ "${#commands[@]}" -eq 2 ] || fail "README.md's first bash block should hold 2 commands, found ${#commands[@]}:
$(printf '  %s\n' "${commands[@]}")"
demo_cmd=${commands[0]}
test_cmd=${commands[1]}
[[ "$test_cmd" == *pytest* ]] || fail "the README's second command does not run pytest: $test_cmd"

phase "fresh venv ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$venv"

# A clean environment: the venv first on PATH, a fresh HOME; kept from ours only what reaches the package index
# (proxy, certificates, pip's settings and cache). Arguments: [NAME=VALUE ...] command ...
run_clean() {
  local keep=() name
  for name in $(compgen -e); do
    case "$name" in
      http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY|SSL_CERT_FILE|SSL_CERT_DIR|\
      REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|PIP_*) keep+=("$name=${!name}") ;;
    esac
  done
  (cd "$clone" && env -i "${keep[@]}" HOME="$home" LANG=C.UTF-8 TMPDIR="${TMPDIR:-/tmp}" \
    PATH="$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" VIRTUAL_ENV="$venv" \
    PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}" "$@")
}

phase "1. $demo_cmd"
rc=0
run_clean bash -c "$demo_cmd" >"$work/demo.log" 2>&1 || rc=$?
decision=$(sed -n 's/^ *decision: *\([a-z]*\).*/\1/p' "$work/demo.log" | tail -1)
if [ "$rc" -ne 0 ] || [[ ! "$decision" =~ ^(injected|preserved)$ ]]; then
  tail -n 30 "$work/demo.log" >&2
  fail "the demo exited $rc and printed decision '${decision}' (expected injected or preserved)"
fi
grep -E '^ *decision:' "$work/demo.log"

phase "2. $test_cmd"
rc=0
run_clean PYTEST_ADDOPTS="--junitxml=$work/junit.xml" bash -c "$test_cmd" >"$work/test.log" 2>&1 || rc=$?
tail -n 1 "$work/test.log"
[ -s "$work/junit.xml" ] || { tail -n 30 "$work/test.log" >&2; fail "pytest wrote no report (exit $rc)"; }

phase "counts"
verdict=0
"$venv/bin/python" - "$work/junit.xml" "$MISSING_RE" "${ALLOWED_SKIPS[@]}" <<'EOF' || verdict=$?
import re
import sys
import xml.etree.ElementTree as ET

path, missing_re, *allowed = sys.argv[1:]
missing = re.compile(missing_re, re.I)
counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
bad_skips, allowed_skips, broken = [], [], []
for case in ET.parse(path).getroot().iter("testcase"):
    test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
    failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
    if failure is not None or error is not None:
        counts["failed" if failure is not None else "errors"] += 1
        broken.append(test_id)
    elif skipped is not None:
        counts["skipped"] += 1
        reason = skipped.get("message", "")
        listed = any(test_id.startswith(a) for a in allowed)
        (allowed_skips if listed and not missing.search(reason) else bad_skips).append(f"{test_id}: {reason}")
    else:
        counts["passed"] += 1
print("  " + ", ".join(f"{n} {k}" for k, n in counts.items()) + f" ({len(allowed_skips)} skips allowed)")
for title, items in (("failed", broken), ("skipped, not allowed", bad_skips), ("skipped, allowed", allowed_skips)):
    for item in items:
        print(f"  {title}: {item}")
sys.exit(1 if broken or bad_skips or counts["passed"] == 0 else 0)
EOF
if [ "$verdict" -ne 0 ] || [ "$rc" -ne 0 ]; then
  fail "the README's test command (pytest exit $rc) left the failed or not allowed skipped tests listed above"
fi
phase "newcomer check passed"
