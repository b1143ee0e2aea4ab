#!/usr/bin/env bash
# CI: the SageMaker Pipelines step under the real SageMaker Python SDK, v3 or v2 (tests marked sagemaker_sdk:
# tests/sagemaker/test_sagemaker_pipelines_step.py). The SDK v3 meta-package is heavy (mlflow, pyarrow, scipy,
# pandas, scikit-learn ...), so neither major is in the [test] extra: this makes a venv of its own with the
# package, the SDK of the given major and pytest, and runs `pytest -m sagemaker_sdk` there; any failure fails
# the script (the v3-only docs example skips under v2).
#
#   .ci/sagemaker-sdk.sh 3      .ci/sagemaker-sdk.sh 2      SAGEMAKER_SDK_VENV=<dir> .ci/sagemaker-sdk.sh 3
#
# SAGEMAKER_SDK_VENV=<dir> keeps (and reuses) the venv; by default it is made in a temporary directory and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
major=${1:-}
case "$major" in
  3) sdk="sagemaker>=3.27,<4" ;;  # what the [sagemaker] extra installs
  2) sdk="sagemaker>=2.200,<3" ;;
  *) echo "usage: $0 3|2 (the SageMaker Python SDK major to test with)" >&2; exit 2 ;;
esac
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 SAGEMAKER_SUPPRESS_V2_WARNING=1
start=$SECONDS
if [ -n "${SAGEMAKER_SDK_VENV:-}" ]; then
  venv=$SAGEMAKER_SDK_VENV
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  venv=$tmp/venv
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py=$venv/bin/python
echo "== sagemaker-sdk $major: install $sdk into $venv"
"$py" -m pip install -q -e . "$sdk" "pytest>=8" "pytest-timeout>=2"
"$py" -m pip check
"$py" -c 'import importlib.metadata as m, sys; from dummy_training.sagemaker.pipelines_step import installed_sdk_major as major
want = int(sys.argv[1]); assert major() == want, f"expected the SDK v{want} API, found {major()}"
print("sagemaker", m.version("sagemaker"))' "$major"
echo "== sagemaker-sdk $major: pytest -m sagemaker_sdk"
"$py" -m pytest -q -p no:cacheprovider -m sagemaker_sdk tests/sagemaker
echo "== sagemaker-sdk $major: done in $((SECONDS - start))s"
