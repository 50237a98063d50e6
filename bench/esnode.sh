#!/usr/bin/env bash
# make bench's own search node: the same OpenSearch 2.19.1 runner as
# testenv/es/node.sh (and its Maven classpath), but with a cluster name of
# its own. node.sh names every node's cluster "replaylink-test", and nodes
# with the same cluster name on one machine find each other on the default
# transport ports and merge into one cluster; the benchmark deletes and
# recreates the `logs` index and stops its node for the outage scenario, which
# must never touch anybody else's node.
#
#   esnode.sh up | stop | start | down | url      (as node.sh)
#
# State in $BENCH_ES_STATE (default /tmp/replaylink-bench-es); HTTP port
# $BENCH_ES_PORT (default 9290; the runner only takes ports up to 9299).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
es=$here/../testenv/es
state=${BENCH_ES_STATE:-/tmp/replaylink-bench-es}
want_port=${BENCH_ES_PORT:-9290}
cluster="replaylink-bench-$want_port"

classpath() {
  if [[ ! -s $es/classpath.txt ]]; then
    mvn -q -B -f "$es/pom.xml" dependency:build-classpath -Dmdep.outputFile="$es/classpath.txt" >&2
  fi
  cat "$es/classpath.txt"
}

running() { [[ -f $state/pid ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }
url() { echo "http://127.0.0.1:$(cat "$state/port")"; }

start() {
  mkdir -p "$state"
  if running; then url; return; fi
  if ((want_port > 9299)); then
    echo "esnode: BENCH_ES_PORT $want_port: the runner only serves ports up to 9299" >&2; exit 2
  fi
  local base=$((want_port - 1))
  [[ -f $state/port ]] && base=$(($(cat "$state/port") - 1))
  : > "$state/node.log"
  nohup java -Xms256m -Xmx1g -XX:+UseSerialGC -cp "$(classpath)" \
    org.codelibs.opensearch.runner.OpenSearchRunner \
    -basePath "$state/data" -numOfNode 1 -baseHttpPort "$base" -clusterName "$cluster" \
    >"$state/node.log" 2>&1 < /dev/null &
  echo $! > "$state/pid"
  local port=""
  for _ in $(seq 1 240); do
    if ! running; then echo "esnode: the node exited; last lines of $state/node.log:" >&2; tail -20 "$state/node.log" >&2; exit 1; fi
    port=$(grep -o 'publish_address {127.0.0.1:[0-9]*}' "$state/node.log" | grep -o '[0-9]*}$' | tr -d '}' | tail -1 || true)
    if [[ -n $port ]] && curl -fsS "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
      echo "$port" > "$state/port"
      # A node of this cluster alone: refuse to go on if it joined another.
      local nodes; nodes=$(curl -fsS "http://127.0.0.1:$port/_cat/nodes?h=name" | wc -l)
      if ((nodes != 1)); then echo "esnode: the node is in a cluster of $nodes nodes; stopping it" >&2; stop; exit 1; fi
      url
      return
    fi
    sleep 0.5
  done
  echo "esnode: the node did not answer within 120 s; see $state/node.log" >&2
  exit 1
}

stop() {
  if running; then
    local pid; pid=$(cat "$state/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$state/pid"
}

case ${1:-} in
  up) stop; rm -rf "$state/data" "$state/port"; start ;;
  start) start ;;
  stop) stop ;;
  down) stop; rm -rf "$state" ;;
  url) running && url ;;
  *) echo "usage: $0 up|start|stop|down|url" >&2; exit 2 ;;
esac
