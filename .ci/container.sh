#!/usr/bin/env bash
# CI, container tier: build the real image (non-root and -root) and run it with podman, including KFP's own
# kfp.local.DockerRunner through podman's Docker API: `pytest -m container tests/container`.
#
#   .ci/container.sh          # as root on a Debian/Ubuntu machine with no container engine (CI); idempotent
#
# 1. podman, runc, mmdebstrap and uidmap from apt when missing, and /etc/containers/containers.conf for a machine
#    without systemd as PID 1, with hybrid cgroups and without CAP_SYS_RESOURCE (crun refuses hybrid cgroups:
#    runc; podman's default rlimits need CAP_SYS_RESOURCE: 1024; no bridge networking: the host's). A
#    containers.conf that this script did not write is left alone.
# 2. The base: python:3.11-slim-bookworm when it can be pulled within PULL_TIMEOUT seconds (default 60), else
#    the same Python from Debian packages (build.sh --debian-base).
# 3. container/build.sh and container/build.sh --root, with this machine's CA bundle as a build secret (a
#    TLS-inspecting proxy), tagged dummy-training:<version>[-root]: the name the committed YAML uses.
# 4. pytest -m container tests/container with those images.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
started=$SECONDS
step() { echo "== $* ($((SECONDS - started)) s)"; }

step "podman"
apt_install_missing container.sh podman runc mmdebstrap uidmap
conf=/etc/containers/containers.conf
marker="# Written by .ci/container.sh"
want="$marker
[containers]
netns = \"host\"
default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
if [ ! -e "$conf" ] || head -n1 "$conf" | grep -qxF "$marker"; then
  mkdir -p /etc/containers
  [ "$(cat "$conf" 2>/dev/null)" = "$want" ] || printf '%s\n' "$want" > "$conf"
else
  echo "keeping $conf (not written by this script)"
fi
podman info --format 'podman {{.Version.Version}}, {{.Host.OCIRuntime.Name}}, {{.Host.CgroupManager}}, cgroup {{.Host.CgroupsVersion}}'

if ! python3 -c "import dummy_training, docker, kfp, moto, pytest" 2>/dev/null; then
  step "python test dependencies"
  python3 -m pip install -q -e ".[test]"
fi

step "base image"
PUBLIC_BASE=docker.io/library/python:3.11-slim-bookworm
base=(--debian-base)
if podman image exists "$PUBLIC_BASE" || timeout "${PULL_TIMEOUT:-60}" podman pull -q "$PUBLIC_BASE" >/dev/null; then
  base=(--python-image "$PUBLIC_BASE")
else
  echo "cannot pull $PUBLIC_BASE: building the base from Debian packages (build.sh --debian-base)"
fi
ca=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && ca=(--ca-bundle /etc/ssl/certs/ca-certificates.crt)

export CONTAINER_ENGINE=podman
step "build the image"
container/build.sh "${base[@]}" "${ca[@]}"
step "build the -root image"
container/build.sh --root "${base[@]}" "${ca[@]}"

VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' container/dummy_training/__init__.py)"
export DUMMY_TRAINING_TEST_IMAGE="dummy-training:$VERSION" DUMMY_TRAINING_TEST_ROOT_IMAGE="dummy-training:$VERSION-root"
step "pytest -m container tests/container"
# the checkout's package on the host side too (the images were built from it), whatever is pip-installed
PYTHONPATH="$PWD/container${PYTHONPATH:+:$PYTHONPATH}" python3 -m pytest -m container tests/container
step "done"
