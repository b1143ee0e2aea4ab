#!/usr/bin/env bash
# CI, real-world corpus tier (issue 19): archives written at test time by the real tar writers and compressors,
# each repacked with both scanners and checked against GNU tar, bsdtar (libarchive) and Python's tarfile:
# `pytest -m corpus tests/corpus`.
#
#   .ci/corpus.sh          # as root on a Debian/Ubuntu machine (CI); idempotent
#
# Installs what is missing (Debian package names): tar (GNU tar), libarchive-tools (bsdtar), libarchive13 (for
# the libarchive-c binding, pip's [test] extra), pax (MirBSD pax), busybox, pigz, zopfli, isal (igzip), tabix
# (bgzip), attr (setfattr), acl (setfacl), 7zip (7zz), git (git archive), npm (npm pack). star (Schily tar) is
# not a writer: Debian 12 has no star package. A missing tool makes the corpus tests fail, naming the package.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
started=$SECONDS
step() { echo "== $* ($((SECONDS - started)) s)"; }

step "writers and readers from apt"
apt_install_missing corpus.sh --no-install-recommends tar libarchive-tools libarchive13 pax busybox pigz zopfli isal tabix attr acl 7zip git
# npm: Debian's package, unless an npm is already there (NodeSource's nodejs ships one and conflicts with it)
command -v npm >/dev/null || apt_install_missing corpus.sh --no-install-recommends npm
tar --version | head -n1
bsdtar --version
python3 -c 'import libarchive' 2>/dev/null || python3 -m pip install -q -e ".[test]"

step "pytest -m corpus tests/corpus (default scanner choice)"
python3 -m pytest -m corpus tests/corpus
step "pytest -m corpus tests/corpus (DUMMY_TRAINING_SCAN_THREADS=1: the single-thread scanner throughout)"
DUMMY_TRAINING_SCAN_THREADS=1 python3 -m pytest -m corpus tests/corpus
step "done"
