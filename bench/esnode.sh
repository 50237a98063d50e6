#!/usr/bin/env bash
# make bench's own search node: testenv/es/node.sh (up | stop | start | down |
# url) with state and port of its own, so it never meets make test's node.
#   BENCH_ES_STATE (default /tmp/replaylink-bench-es), BENCH_ES_PORT (default 9290)
export REPLAYLINK_ES_STATE=${BENCH_ES_STATE:-/tmp/replaylink-bench-es}
export REPLAYLINK_ES_PORT=${BENCH_ES_PORT:-9290}
exec "$(dirname "$0")/../testenv/es/node.sh" "$@"
