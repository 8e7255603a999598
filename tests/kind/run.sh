#!/usr/bin/env bash
# End-to-end on kind: build the images, create a 3-zone kind cluster, `helm install` the chart,
# apply a Stream, produce with the AWS CLI and shardctl through the Stream's Service, scale the
# stream, delete a shard-server pod, check that every acknowledged record is still readable,
# and tear everything down. Exits 0 with "skipped: …" where docker or kind is missing.
#
#   tests/kind/run.sh            (KEEP=1 keeps the cluster for a look afterwards)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
  echo "skipped: docker not available"
  exit 0
fi
if ! command -v kind >/dev/null; then
  echo "skipped: kind not available (https://kind.sigs.k8s.io)"
  exit 0
fi
TOOLS="$(bash scripts/helm-tools.sh)"
export PATH="$TOOLS:$PATH"
CLUSTER="${CLUSTER:-shardline-e2e}"
TAG=kind
NS=shardline-e2e
cleanup() {
  if [[ "${KEEP:-0}" != 1 ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step() { echo "== $*"; }

step "images"
bash scripts/images.sh "$TAG"
step "cluster"
kind create cluster --name "$CLUSTER" --config tests/kind/cluster.yaml --wait 120s
kind load docker-image --name "$CLUSTER" "shardline/shard-server:$TAG" "shardline/shardline-operator:$TAG"

step "helm install"
helm install shardline charts/shardline --namespace shardline-system --create-namespace --wait \
  --set operator.image.repository=shardline/shardline-operator --set operator.image.tag="$TAG" \
  --set operator.image.pullPolicy=Never \
  --set shardServer.image.repository=shardline/shard-server --set shardServer.image.tag="$TAG"

step "stream"
kubectl create namespace "$NS"
kubectl -n "$NS" apply -f - <<'YAML'
apiVersion: shardline.io/v1alpha1
kind: Stream
metadata: { name: orders }
spec: { shards: 4, zones: [zone-a, zone-b, zone-c], serversPerZone: 1, storage: { size: 1Gi } }
YAML
kubectl -n "$NS" wait stream/orders --for=jsonpath='{.status.phase}'=Active --timeout=300s
kubectl -n "$NS" get streams

ENDPOINT="http://orders.$NS.svc:4567"
aws() {
  kubectl -n "$NS" run "aws-$RANDOM" --rm -i --restart=Never --quiet --image=amazon/aws-cli:2.17.0 \
    --env AWS_ACCESS_KEY_ID=any --env AWS_SECRET_ACCESS_KEY=any --env AWS_DEFAULT_REGION=us-east-1 \
    -- kinesis --endpoint-url "$ENDPOINT" "$@"
}
shardctl() {
  kubectl -n "$NS" run "shardctl-$RANDOM" --rm -i --restart=Never --quiet --image="shardline/shard-server:$TAG" \
    --image-pull-policy=Never --command -- /usr/local/bin/shardctl --endpoint "$ENDPOINT" "$@"
}

step "produce with the AWS CLI and shardctl"
for i in $(seq 1 20); do
  aws put-record --stream-name orders --partition-key "key-$i" --data "$(printf 'cli-%s' "$i" | base64)" >/dev/null
done
seq 1 2000 | sed 's/^/shardctl-/' | shardctl put orders >/dev/null

step "scale 4 → 8 while a pod restarts"
kubectl -n "$NS" scale stream/orders --replicas=8
kubectl -n "$NS" delete pod orders-1-0 --wait=false
kubectl -n "$NS" wait stream/orders --for=jsonpath='{.status.shards}'=8 --timeout=300s
kubectl -n "$NS" wait stream/orders --for=jsonpath='{.status.phase}'=Active --timeout=300s

step "read everything back"
count=$(shardctl get orders --from trim-horizon --json | grep -c '"sequence_number"' || true)
echo "records read: $count (2020 acknowledged)"
if (( count < 2020 )); then
  echo "FAILED: acknowledged records missing" >&2
  exit 1
fi

step "delete"
kubectl -n "$NS" delete stream/orders --wait=true --timeout=120s
if kubectl -n "$NS" get statefulsets -o name | grep -q orders; then
  echo "FAILED: StatefulSets left behind" >&2
  exit 1
fi
echo "kind end-to-end: passed"
