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

if [[ -z ${REPLAYLINK_TEST_ES_URL:-} ]]; then
  export REPLAYLINK_ES_STATE=${REPLAYLINK_ES_STATE:-$PWD/.es-soak}
  export REPLAYLINK_ES_PORT=${REPLAYLINK_ES_PORT:-9260}
  echo "== search node (state $REPLAYLINK_ES_STATE)"
  REPLAYLINK_TEST_ES_URL=$(testenv/es/node.sh up) || { echo "soak: the search node did not start" >&2; exit 1; }
  export REPLAYLINK_TEST_ES_URL
  export REPLAYLINK_TEST_ES_CTL=$PWD/testenv/es/node.sh
  trap 'testenv/es/node.sh down' EXIT
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

echo
echo "== soak summary ($(( $(date +%s) - t0 )) s; $summary)"
{
  printf 'TEST\tRESULT\tSECONDS\tNUMBERS\n'
  sort "$summary"
} | awk -F'\t' '{ printf "%-58s %-6s %8s  %s\n", $1, $2, $3, $4 }'
if grep -q $'\tFAIL\t' "$summary"; then status=1; fi
[[ $status == 0 ]] && echo "make soak: passed" || echo "make soak: FAILED (see $log)"
exit $status
