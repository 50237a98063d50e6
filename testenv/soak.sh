#!/usr/bin/env bash
# `make soak`: the long forms of the fault tests (package faults), then a
# summary table. Minutes, not seconds: 2k requests/s, a 60 s node outage,
# 30 s Elasticsearch faults, 10k connections, 10 SIGKILLs...
#
# The sizes come from faults/report_test.go; REPLAYLINK_SOAK=1 selects the
# long forms and each can be overridden, e.g.
#   REPLAYLINK_FAULTS_RATE=5000 REPLAYLINK_FAULTS_OUTAGE=2m make soak
# (RATE, DURATION, FAULT, OUTAGE, CONNS, KILLS, CRASHES, SLOW_CLIENTS,
#  SLOWLORIS, DISKFULL_REQUESTS, SLOW_BULK, CATCHUP).
#
# Without REPLAYLINK_TEST_ES_URL it starts its own search node (state in
# .es-soak, port REPLAYLINK_ES_PORT or 9260: the runner only picks ports below
# 9300) and stops it at the end; the outage test stops and starts that node.
# With REPLAYLINK_TEST_ES_URL it uses that node, and runs the outage test only
# if REPLAYLINK_TEST_ES_CTL says how to stop and start it.
#
# The cluster tests (TestCluster*) run last, against a three-node cluster
# of their own (testenv/es/cluster.sh; state .es-cluster-soak, HTTP ports
# 9267-9269) unless REPLAYLINK_TEST_CLUSTER_URLS and REPLAYLINK_TEST_CLUSTER_CTL
# name one.
#
# SOAK_RUN=REGEXP runs only the matching tests (go test -run).
#
# Tests run without -race (the rates need the CPU; `make test` runs the
# short forms with -race); SOAK_RACE=1 adds it.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

export REPLAYLINK_SOAK=1
export REPLAYLINK_ARTIFACTS=${REPLAYLINK_ARTIFACTS:-$PWD/artifacts}
mkdir -p "$REPLAYLINK_ARTIFACTS"
summary=$REPLAYLINK_ARTIFACTS/soak-summary.tsv
log=$REPLAYLINK_ARTIFACTS/soak-go-test.log
: > "$summary"
: > "$log"
export REPLAYLINK_FAULTS_SUMMARY=$summary

# What this script started, it stops.
own_node=0 own_cluster=0
cleanup() {
  if ((own_cluster)); then testenv/es/cluster.sh down; fi
  if ((own_node)); then testenv/es/node.sh down; fi
}
trap cleanup EXIT

if [[ -z ${REPLAYLINK_TEST_ES_URL:-} ]]; then
  export REPLAYLINK_ES_STATE=${REPLAYLINK_ES_STATE:-$PWD/.es-soak}
  export REPLAYLINK_ES_PORT=${REPLAYLINK_ES_PORT:-9260}
  echo "== search node (state $REPLAYLINK_ES_STATE)"
  REPLAYLINK_TEST_ES_URL=$(testenv/es/node.sh up) || { echo "soak: the search node did not start" >&2; exit 1; }
  export REPLAYLINK_TEST_ES_URL
  export REPLAYLINK_TEST_ES_CTL=$PWD/testenv/es/node.sh
  own_node=1
fi
echo "search node at $REPLAYLINK_TEST_ES_URL"

race=()
[[ ${SOAK_RACE:-0} == 1 ]] && race=(-race)
run=()
[[ -n ${SOAK_RUN:-} ]] && run=(-run "$SOAK_RUN")
status=0

echo "== fault tests, long forms (log: $log)"
go test "${race[@]}" "${run[@]}" -count=1 -timeout 90m -skip '^TestOutage' ./faults/ 2>&1 | tee -a "$log"
[[ ${PIPESTATUS[0]} == 0 ]] || status=1

if [[ -n ${SOAK_RUN:-} ]] && ! grep -q 'Outage' <<<"$SOAK_RUN"; then
  echo "== outage tests not selected by SOAK_RUN"
elif [[ -n ${REPLAYLINK_TEST_ES_CTL:-} ]]; then
  echo "== outage tests, long forms (the node is stopped and started)"
  go test "${race[@]}" -count=1 -timeout 30m -run '^TestOutage' ./faults/ 2>&1 | tee -a "$log"
  [[ ${PIPESTATUS[0]} == 0 ]] || status=1
else
  echo "== outage tests skipped: REPLAYLINK_TEST_ES_CTL is not set for the given node"
fi

if [[ -n ${SOAK_RUN:-} ]] && ! grep -q 'Cluster' <<<"$SOAK_RUN"; then
  echo "== cluster tests not selected by SOAK_RUN"
else
  # A three-node cluster of its own (state .es-cluster-soak, HTTP ports
  # 9267-9269), unless REPLAYLINK_TEST_CLUSTER_URLS and _CTL name one.
  if [[ -z ${REPLAYLINK_TEST_CLUSTER_URLS:-} ]]; then
    export REPLAYLINK_CLUSTER_STATE=${REPLAYLINK_CLUSTER_STATE:-$PWD/.es-cluster-soak}
    export REPLAYLINK_CLUSTER_PORT=${REPLAYLINK_CLUSTER_PORT:-9267}
    echo "== three-node cluster (state $REPLAYLINK_CLUSTER_STATE)"
    own_cluster=1
    if REPLAYLINK_TEST_CLUSTER_URLS=$(testenv/es/cluster.sh up); then
      export REPLAYLINK_TEST_CLUSTER_URLS
      export REPLAYLINK_TEST_CLUSTER_CTL=$PWD/testenv/es/cluster.sh
    else
      echo "soak: the cluster did not start" >&2; status=1
    fi
  fi
  if [[ -n ${REPLAYLINK_TEST_CLUSTER_URLS:-} ]]; then
    echo "== cluster tests, long forms (2,000 requests/s, nodes killed, restarted, pushing back)"
    go test "${race[@]}" -count=1 -timeout 30m -v -run '^TestCluster' ./faults/ 2>&1 | tee -a "$log"
    [[ ${PIPESTATUS[0]} == 0 ]] || status=1
  fi
fi

echo
echo "== soak summary ($(( $(date +%s) - t0 )) s; $summary)"
{
  printf 'TEST\tRESULT\tSECONDS\tNUMBERS\n'
  sort "$summary"
} | awk -F'\t' '{ printf "%-58s %-6s %8s  %s\n", $1, $2, $3, $4 }'
if grep -q $'\tFAIL\t' "$summary"; then status=1; fi
[[ $status == 0 ]] && echo "make soak: passed" || echo "make soak: FAILED (see $log)"
exit $status
