#!/usr/bin/env bash
# CI: a base install, as `pip install .` gives a user (no extras): every sub-command's --help works, and a
# call that needs an extra's package ends with one line naming the extra (tests/test_base_install.py, marker
# base_install). Makes its own venv with the package (not editable: the installed files, package data included)
# and pytest, nothing else. BASE_INSTALL_VENV=<dir> keeps (and reuses) the venv; by default it is made in a
# temporary directory and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
start=$SECONDS
if [ -n "${BASE_INSTALL_VENV:-}" ]; then
  venv=$BASE_INSTALL_VENV
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  venv=$tmp/venv
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py=$venv/bin/python
echo "== base-install: pip install . (no extras) into $venv"
"$py" -m pip install -q --force-reinstall --no-deps . && "$py" -m pip install -q . "pytest>=8" "pytest-timeout>=2"
"$py" -m pip check
"$py" -m pip list --format=freeze | grep -iE '^(kfp|pyyaml|kubernetes|sagemaker)=' && {
  echo "base-install: an extra's package is installed in $venv" >&2; exit 1; }
echo "== base-install: pytest -m base_install tests/test_base_install.py"
# from a directory outside the checkout's container/: the package imported is the installed one
"$py" -m pytest -q -p no:cacheprovider -m base_install tests/test_base_install.py
echo "== base-install: done in $((SECONDS - start))s"
