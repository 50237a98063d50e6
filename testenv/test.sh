#!/usr/bin/env bash
# `make test`: everything CI runs, on a fresh machine of this kind.
#  1. install what the tests need (idempotent, quick when present)
#  2. go vet, gofmt and staticcheck
#  3. start the real search node (testenv/es/node.sh), run all tests with -race
#  4. run the outage tests alone (they stop and start the node), then stop it
#  5. start a real three-node cluster (testenv/es/cluster.sh), run the
#     cluster tests against it (nodes killed, stopped, restarted, pushing
#     back under load), then stop it
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

bash testenv/deps.sh

echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [[ -n $unformatted ]]; then echo "not gofmt-ed (run gofmt -w):"; echo "$unformatted"; exit 1; fi
echo "== staticcheck"
# The version make lint runs; findings fail the build, so they cannot pile up
# unseen between runs of make lint.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== search node"
export REPLAYLINK_ES_STATE=${REPLAYLINK_ES_STATE:-$PWD/.es}
REPLAYLINK_TEST_ES_URL=$(testenv/es/node.sh up)
export REPLAYLINK_TEST_ES_URL
export REPLAYLINK_CLUSTER_STATE=${REPLAYLINK_CLUSTER_STATE:-$PWD/.es-cluster}
trap 'testenv/es/node.sh down; testenv/es/cluster.sh down' EXIT
echo "search node at $REPLAYLINK_TEST_ES_URL"

export REPLAYLINK_ARTIFACTS=${REPLAYLINK_ARTIFACTS:-$PWD/artifacts}
mkdir -p "$REPLAYLINK_ARTIFACTS"

echo "== runtime hooks: Python (pytest) and Node (node --test) against real servers"
python3 -m pytest -q -p no:cacheprovider capture/hooks/pytest
node --test capture/hooks/nodetest/

echo "== unit and integration tests (-race)"
go test -race -count=1 -timeout 12m -skip '^(TestOutage|TestCluster)' ./...

echo "== outage tests (the node is stopped and started; nothing else runs)"
# Only the packages that have outage tests; -p 1: one at a time, as each of
# these stops the node.
outage_pkgs=$(grep -l '^func TestOutage' $(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go') | xargs -n1 dirname | sort -u | sed 's|^|./|; s|^\./\./|./|')
REPLAYLINK_TEST_ES_CTL=$PWD/testenv/es/node.sh go test -race -count=1 -p 1 -timeout 8m -run '^TestOutage' $outage_pkgs

echo "== cluster tests (a real three-node cluster; nodes are killed, stopped and restarted under load)"
testenv/es/node.sh down # its CPU is the cluster's now
t1=$(date +%s)
REPLAYLINK_TEST_CLUSTER_URLS=$(testenv/es/cluster.sh up)
REPLAYLINK_TEST_CLUSTER_URLS=$REPLAYLINK_TEST_CLUSTER_URLS REPLAYLINK_TEST_CLUSTER_CTL=$PWD/testenv/es/cluster.sh \
  go test -race -count=1 -timeout 15m -v -run '^TestCluster' ./faults/
testenv/es/cluster.sh down
echo "cluster phase: $(( $(date +%s) - t1 )) s"

echo "make test: passed in $(( $(date +%s) - t0 )) s"
