#!/usr/bin/env bash
# CI: the SageMaker Pipelines step under the SageMaker Python SDK v2 (sagemaker<3). The main environment has v3
# (the [test] extra), so this makes a venv of its own with v2, the package and pytest, and runs the step's tests
# there; any failure fails the script (the v3-only tests skip). SAGEMAKER_V2_VENV=<dir> keeps (and reuses) the
# venv; by default it is made in a temporary directory and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 SAGEMAKER_SUPPRESS_V2_WARNING=1
start=$SECONDS
if [ -n "${SAGEMAKER_V2_VENV:-}" ]; then
  venv=$SAGEMAKER_V2_VENV
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  venv=$tmp/venv
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py=$venv/bin/python
echo "== sagemaker-v2: install into $venv"
"$py" -m pip install -q -e . "sagemaker>=2.200,<3" "pytest>=8" "pytest-timeout>=2"
"$py" -m pip check
"$py" -c 'import importlib.metadata as m; from dummy_training.sagemaker.pipelines_step import installed_sdk_major as major
assert major() == 2, f"expected the SDK v2 API, found {major()}"; print("sagemaker", m.version("sagemaker"))'
echo "== sagemaker-v2: pytest tests/sagemaker/test_sagemaker_pipelines_step.py"
"$py" -m pytest -q -p no:cacheprovider tests/sagemaker/test_sagemaker_pipelines_step.py
echo "== sagemaker-v2: done in $((SECONDS - start))s"
