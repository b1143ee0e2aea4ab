#!/usr/bin/env bash
# Run the dummy-training pipeline on a local kind cluster with Kubeflow Pipelines standalone.
#
# NOT RUN IN CI: the machine this project is developed and tested on has no Docker engine, so neither kind
# nor the image build can run there. CI lints the Dockerfile (hadolint), checks the compiled YAML for drift,
# loads it back, and runs the same compiled pipeline end to end with kfp.local (`dummy-training demo`).
# This script is the documented path to a real cluster; treat it as a recipe and read each step.
#
# What has run (tests/peers/test_kfp_cluster.py, by hand, on KFP 2.17.0's own API server, persistence agent,
# driver, launcher and ML Metadata with Argo v3.7.17 on a real single node): minio:// URIs into KFP's store
# (bucket mlpipeline; another bucket only with AWS keys, region and AWS_ENDPOINT_URL_S3 (by IP) in the task's
# aws-credentials secret: KFP reads imported artifacts with the pod's environment), the
# mlpipeline-minio-artifact credentials, `kfp pipeline create`, `kfp run create -p ID -v VERSION_ID`, inline
# hyperparameters, backend=kubernetes (inject, preserve, a failure's one line in the pod log) and
# backend=sagemaker against a fake SageMaker (endpoint keys in the aws-credentials secret). NOT run: kind itself,
# KFP's manifests (SeaweedFS, MySQL, the UI), `run create -f`, port-forwards, real AWS.
#
# Needs: docker (or podman: CONTAINER_ENGINE=podman), kind, kubectl, and this package installed
# (`pip install -e ".[kfp]"`, for the kfp CLI, boto3 and the example model). About 4 CPUs / 8 GB for KFP.
#
#   pipelines/kind/up.sh              # everything: cluster, KFP, image, upload, one run (inject case)
#   KFP_VERSION=2.17.0 CLUSTER=dt pipelines/kind/up.sh
#   pipelines/kind/up.sh --down       # delete the cluster
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${CLUSTER:-dummy-training}"
KFP_VERSION="${KFP_VERSION:-2.17.0}"          # KFP backend release (manifests tag); >= 2.15.0: see below
# The backend release of kfp SDK 2.17. Our tasks take AWS keys from a secret with `optional: true`
# (kfp-kubernetes >= 2.15); a 2.14.x API server refuses every run of our pipelines at run creation
# (its KubernetesExecutorConfig has no such field: "failed to unmarshal kubernetes config: ... unknown field
# \"optional\"").
NAMESPACE=kubeflow
UI_PORT="${UI_PORT:-8080}"
MINIO_PORT="${MINIO_PORT:-9000}"
PIPELINE_NAME=dummy-training-pipeline
PIPELINE_YAML="$ROOT/pipelines/dummy_training_pipeline.yaml"
BUCKET=mlpipeline                              # KFP's own MinIO bucket (also holds pipeline artifacts)
PREFIX=dummy-training-demo
PIDS=()

cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if [ "${1:-}" = "--down" ]; then
  kind delete cluster --name "$CLUSTER"
  exit 0
fi

step() { printf '\n== %s\n' "$*"; }

# 1. The cluster (kept if it already exists).
step "kind cluster $CLUSTER"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER"

# 2. Kubeflow Pipelines standalone (platform-agnostic: an S3 store + MySQL inside the cluster; since KFP 2.15 the
#    store is SeaweedFS, service seaweedfs, S3 on port 9000 as MinIO's was, same mlpipeline-minio-artifact secret).
step "Kubeflow Pipelines $KFP_VERSION"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"
echo "waiting for KFP deployments (first install pulls many images: several minutes)"
kubectl -n "$NAMESPACE" wait --for=condition=Available --timeout=900s deployment --all

# 3. Our image, built locally and loaded into the kind nodes (components use imagePullPolicy IfNotPresent).
step "image"
"$ROOT/container/build.sh" --kind --cluster "$CLUSTER"

# 4. Port-forwards: the KFP API/UI and MinIO.
step "port-forwards (UI: http://localhost:$UI_PORT)"
kubectl -n "$NAMESPACE" port-forward svc/ml-pipeline-ui "$UI_PORT:80" >/dev/null 2>&1 & PIDS+=($!)
OBJECT_STORE_SVC="svc/seaweedfs"                # KFP < 2.15: svc/minio-service
kubectl -n "$NAMESPACE" get "$OBJECT_STORE_SVC" >/dev/null 2>&1 || OBJECT_STORE_SVC=svc/minio-service
kubectl -n "$NAMESPACE" port-forward "$OBJECT_STORE_SVC" "$MINIO_PORT:9000" >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 30); do curl -fs "http://localhost:$UI_PORT/apis/v2beta1/healthz" >/dev/null && break; sleep 2; done

# 5. An example model (no hyperparameters.json inside) and hyperparameters, uploaded to KFP's MinIO.
#    The KFP launcher reads minio:// URIs with the cluster's own MinIO credentials.
step "example inputs -> minio://$BUCKET/$PREFIX/"
MINIO_USER="$(kubectl -n "$NAMESPACE" get secret mlpipeline-minio-artifact -o jsonpath='{.data.accesskey}' | base64 -d)"
MINIO_PASS="$(kubectl -n "$NAMESPACE" get secret mlpipeline-minio-artifact -o jsonpath='{.data.secretkey}' | base64 -d)"
MINIO_USER="$MINIO_USER" MINIO_PASS="$MINIO_PASS" MINIO_PORT="$MINIO_PORT" BUCKET="$BUCKET" PREFIX="$PREFIX" \
python3 - <<'PY'
import os, tempfile
from pathlib import Path
import boto3
from dummy_training.kfp.example_model import write_example_hyperparameters, write_example_model

tmp = Path(tempfile.mkdtemp())
s3 = boto3.client("s3", endpoint_url=f"http://localhost:{os.environ['MINIO_PORT']}", region_name="us-east-1",
                  aws_access_key_id=os.environ["MINIO_USER"], aws_secret_access_key=os.environ["MINIO_PASS"])
for path, key in ((write_example_model(tmp / "model.tar.gz"), "model.tar.gz"),
                  (write_example_hyperparameters(tmp / "hyperparameters.json"), "hyperparameters.json")):
    s3.upload_file(str(path), os.environ["BUCKET"], f"{os.environ['PREFIX']}/{key}")
    print("uploaded", key)
PY

# 6. Upload the compiled pipeline (a new version if it exists) and start a run on the kubernetes backend.
step "pipeline $PIPELINE_NAME"
KFP=(kfp --endpoint "http://localhost:$UI_PORT")
"${KFP[@]}" pipeline create -p "$PIPELINE_NAME" "$PIPELINE_YAML" \
  || "${KFP[@]}" pipeline create-version -n "$PIPELINE_NAME" -v "v$(date +%Y%m%d%H%M%S)" "$PIPELINE_YAML"

step "run (inject case); watch it at http://localhost:$UI_PORT"
# -f submits the compiled spec with the run (the uploaded pipeline above is for the UI and later runs).
"${KFP[@]}" run create -e dummy-training -r "dummy-training-$(date +%H%M%S)" -f "$PIPELINE_YAML" --timeout 900 \
  model_uri="minio://$BUCKET/$PREFIX/model.tar.gz" \
  hyperparameters_uri="minio://$BUCKET/$PREFIX/hyperparameters.json" \
  backend=kubernetes

echo
echo "done. The repacked model is the repack task's output_model artifact (UI: run > repack > output_model)."
echo "Port-forwards stop when this script exits; 'pipelines/kind/up.sh --down' deletes the cluster."
