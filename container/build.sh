#!/usr/bin/env bash
# Build the dummy-training image with docker or podman and tag it dummy-training:<version>.
#
#   container/build.sh                      # docker if present, else podman
#   container/build.sh --kind               # ... and load it into the kind cluster "dummy-training"
#   container/build.sh --kind --cluster x   # ... into kind cluster "x"
#   container/build.sh --tag 1234.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0 --push
#   container/build.sh --root               # root variant dummy-training:<version>-root for SageMaker / ACK
#                                           # jobs in staged mode (SageMaker mounts /opt/ml/processing root-owned)
#   container/build.sh --debian-base        # no public registry: build the python:3.11 base from Debian
#                                           # packages (mmdebstrap, root), reused once it exists
#   container/build.sh --ca-bundle /etc/ssl/certs/ca-certificates.crt   # a TLS-inspecting proxy's CA for pip,
#                                           # passed as a build secret (in no image layer)
#   container/build.sh --python-image IMG   # another python:3.11 base image
#   container/build.sh --network MODE       # the build's network (podman default: host; docker: its default)
#   CONTAINER_ENGINE=podman container/build.sh
#
# The version comes from container/dummy_training/__init__.py, so the tag matches what the compiled
# components name (dummy-training:<version>); when you push elsewhere, compile for it:
# dummy-training compile --image <tag> --output-dir DIR (docs/deploy.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/container/dummy_training/__init__.py")"
[ -n "$VERSION" ] || { echo "build.sh: cannot read __version__" >&2; exit 1; }
TAG="dummy-training:$VERSION"
KIND=0
CLUSTER="${KIND_CLUSTER_NAME:-dummy-training}"
PUSH=0
APP_UID=1000
DEBIAN_BASE=0
CA_BUNDLE=""
PYTHON_IMAGE=""
NETWORK=""
# --debian-base: the imported Debian rootfs and the base built on it (container/debian-base/Containerfile)
ROOTFS_IMAGE=localhost/debian-bookworm-python3:rootfs
BASE_IMAGE=localhost/dummy-training-base:py311-bookworm

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kind) KIND=1 ;;
    --cluster) CLUSTER="$2"; shift ;;
    --tag) TAG="$2"; shift ;;
    --push) PUSH=1 ;;
    --root) APP_UID=0 ;;
    --debian-base) DEBIAN_BASE=1 ;;
    --ca-bundle) CA_BUNDLE="$2"; shift ;;
    --python-image) PYTHON_IMAGE="$2"; shift ;;
    --network) NETWORK="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$APP_UID" = 0 ]; then TAG="${TAG}-root"; fi   # after the loop: --root and --tag in either order
if [ -n "$CA_BUNDLE" ] && [ ! -s "$CA_BUNDLE" ]; then
  echo "build.sh: --ca-bundle $CA_BUNDLE: no such file (or empty)" >&2; exit 2
fi
if [ "$DEBIAN_BASE" = 1 ] && [ -n "$PYTHON_IMAGE" ]; then
  echo "build.sh: give --debian-base or --python-image, not both" >&2; exit 2
fi

ENGINE="${CONTAINER_ENGINE:-}"
if [ -z "$ENGINE" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then ENGINE=podman
  else echo "build.sh: neither a running docker engine nor podman found" >&2; exit 1
  fi
fi
# podman's default build network needs a working bridge (netavark/CNI) or slirp4netns, which a plain VM or a
# CI container often lacks; pip in the build only needs outbound access, so podman builds on the host network.
[ -z "$NETWORK" ] && [ "$ENGINE" = podman ] && NETWORK=host
build_opts=()
[ -n "$NETWORK" ] && build_opts+=(--network "$NETWORK")

image_exists() {
  if [ "$ENGINE" = podman ]; then podman image exists "$1"; else "$ENGINE" image inspect "$1" >/dev/null 2>&1; fi
}

if [ "$DEBIAN_BASE" = 1 ]; then
  if image_exists "$BASE_IMAGE"; then
    echo "using the Debian base $BASE_IMAGE (remove it to rebuild)"
  else
    command -v mmdebstrap >/dev/null 2>&1 || {
      echo "build.sh: --debian-base needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "bootstrapping Debian bookworm with python3 (mmdebstrap) for $BASE_IMAGE"
    mmdebstrap --quiet --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,passwd \
      bookworm "$work/rootfs.tar"
    "$ENGINE" import --change 'CMD ["/bin/bash"]' "$work/rootfs.tar" "$ROOTFS_IMAGE" >/dev/null
    rm -rf "$work"; trap - EXIT
    "$ENGINE" build "${build_opts[@]}" --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" --tag "$BASE_IMAGE" \
      "$ROOT/container/debian-base"
  fi
  PYTHON_IMAGE="$BASE_IMAGE"
fi

[ -n "$PYTHON_IMAGE" ] && build_opts+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
# The Dockerfile's pip install reads the secret "cacert" when it is there (PIP_CERT), and only in that RUN.
[ -n "$CA_BUNDLE" ] && build_opts+=(--secret "id=cacert,src=$CA_BUNDLE")

# podman names a bare "dummy-training:x" localhost/dummy-training:x, but a pod's "dummy-training:x" means
# docker.io/library/dummy-training:x: give podman builds that full name too, so kind nodes find the image.
FULL="$TAG"
case "$TAG" in */*) ;; *) FULL="docker.io/library/$TAG" ;; esac

echo "building $TAG with $ENGINE (context $ROOT)"
"$ENGINE" build "${build_opts[@]}" --file "$ROOT/container/Dockerfile" --build-arg "VERSION=$VERSION" \
  --build-arg "APP_UID=$APP_UID" --tag "$TAG" --tag "$FULL" "$ROOT"
"$ENGINE" run --rm "$TAG" --version   # smoke test: the entrypoint runs as the image's user

if [ "$PUSH" = 1 ]; then
  "$ENGINE" push "$TAG"
fi

if [ "$KIND" = 1 ]; then
  command -v kind >/dev/null 2>&1 || { echo "build.sh: kind not found" >&2; exit 1; }
  if [ "$ENGINE" = docker ]; then
    kind load docker-image "$TAG" --name "$CLUSTER"
  else  # podman: go through an archive
    archive="$(mktemp --suffix=.tar)"
    trap 'rm -f "$archive"' EXIT
    podman save --format docker-archive -o "$archive" "$FULL"
    kind load image-archive "$archive" --name "$CLUSTER"
  fi
  echo "loaded $TAG into kind cluster $CLUSTER (the components use imagePullPolicy IfNotPresent)"
fi
