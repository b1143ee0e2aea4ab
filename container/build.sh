#!/usr/bin/env bash
# Build the dummy-training image with docker or podman and tag it dummy-training:<version>.
#
#   container/build.sh                      # docker if present, else podman
#   container/build.sh --kind               # ... and load it into the kind cluster "dummy-training"
#   container/build.sh --kind --cluster x   # ... into kind cluster "x"
#   container/build.sh --tag 1234.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0 --push
#   container/build.sh --root               # root variant dummy-training:<version>-root for SageMaker / ACK
#                                           # jobs in staged mode (SageMaker mounts /opt/ml/processing root-owned)
#   CONTAINER_ENGINE=podman container/build.sh
#
# The version comes from container/dummy_training/__init__.py, so the tag matches what the compiled
# components name (dummy-training:<version>); compile with DUMMY_TRAINING_IMAGE=<tag> when you push elsewhere.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/container/dummy_training/__init__.py")"
[ -n "$VERSION" ] || { echo "build.sh: cannot read __version__" >&2; exit 1; }
TAG="dummy-training:$VERSION"
KIND=0
CLUSTER="${KIND_CLUSTER_NAME:-dummy-training}"
PUSH=0
APP_UID=1000

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kind) KIND=1 ;;
    --cluster) CLUSTER="$2"; shift ;;
    --tag) TAG="$2"; shift ;;
    --push) PUSH=1 ;;
    --root) APP_UID=0; TAG="${TAG}-root" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

ENGINE="${CONTAINER_ENGINE:-}"
if [ -z "$ENGINE" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then ENGINE=podman
  else echo "build.sh: neither a running docker engine nor podman found" >&2; exit 1
  fi
fi

# podman names a bare "dummy-training:x" localhost/dummy-training:x, but a pod's "dummy-training:x" means
# docker.io/library/dummy-training:x: give podman builds that full name too, so kind nodes find the image.
FULL="$TAG"
case "$TAG" in */*) ;; *) FULL="docker.io/library/$TAG" ;; esac

echo "building $TAG with $ENGINE (context $ROOT)"
"$ENGINE" build --file "$ROOT/container/Dockerfile" --build-arg "VERSION=$VERSION" --build-arg "APP_UID=$APP_UID" --tag "$TAG" --tag "$FULL" "$ROOT"
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
