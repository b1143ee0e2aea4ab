#!/usr/bin/env bash
# CI: the components on the oldest kfp the package allows at run time (setup.py: kfp>=2.15,<3). Makes a venv of
# its own with the package, kfp and kfp-kubernetes 2.15.0, and what tests/kfp/test_components_alone.py needs;
# runs that file there (each committed component.yaml alone under kfp.local.SubprocessRunner), then checks that
# `dummy-training demo` refuses in one line (exit 3, nothing written): kfp.local runs our pipelines' dsl.If
# branches only from kfp 2.17 on. KFP_OLDEST_VENV=<dir> keeps (and reuses) the venv; by default it is made in a
# temporary directory and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
OLDEST=2.15.0
start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
venv=${KFP_OLDEST_VENV:-$tmp/venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py=$venv/bin/python
echo "== kfp-oldest: install kfp $OLDEST into $venv"
# docker: kfp 2.15's kfp.local imports it whatever the runner (later releases import it only for DockerRunner)
"$py" -m pip install -q -e ".[ack]" "kfp==$OLDEST" "kfp-kubernetes==$OLDEST" "docker>=7" "moto[s3]>=5.1,<5.3" \
  "flask>=2" "flask-cors>=3" "jsonschema>=4" "pytest>=8" "pytest-timeout>=2"
"$py" -m pip check
"$py" -c 'import importlib.metadata as m, sys; v = m.version("kfp"); print("kfp", v); assert v == sys.argv[1], v' \
  "$OLDEST"
echo "== kfp-oldest: pytest tests/kfp/test_components_alone.py"
"$py" -m pytest -q -p no:cacheprovider -rs tests/kfp/test_components_alone.py
echo "== kfp-oldest: dummy-training demo refuses in one line"
mkdir "$tmp/demo"
rc=0
(cd "$tmp/demo" && "$py" -m dummy_training demo) >"$tmp/demo.out" 2>"$tmp/demo.err" || rc=$?
cat "$tmp/demo.err"
[ "$rc" -eq 3 ] || { echo "kfp-oldest: the demo exited $rc, expected 3" >&2; exit 1; }
[ "$(wc -l <"$tmp/demo.err")" -eq 1 ] && grep -q "^dummy-training: error: .*kfp>=2.17" "$tmp/demo.err" \
  || { echo "kfp-oldest: the demo's refusal is not one line naming kfp>=2.17" >&2; exit 1; }
[ -z "$(ls -A "$tmp/demo")" ] && [ ! -s "$tmp/demo.out" ] || { echo "kfp-oldest: the demo wrote something" >&2; exit 1; }
echo "== kfp-oldest: done in $((SECONDS - start))s"
