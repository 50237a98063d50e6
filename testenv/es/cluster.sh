#!/usr/bin/env bash
# Starts and stops a real three-node search cluster for the cluster tests:
# three separate OpenSearch 2.19.1 processes (the runner node.sh uses, each
# with -numOfNode 1, the same -clusterName and its own HTTP port), so that
# killing one process is a real node failure.
#
#   cluster.sh up          start three fresh nodes; wait until all three form one
#                          green cluster; print their URLs, comma-separated
#   cluster.sh down        stop every node and delete the data
#   cluster.sh urls        print the URLs (comma-separated)
#   cluster.sh url N       print node N's URL (N is 1, 2 or 3)
#   cluster.sh kill N      SIGKILL node N (a crash: no shutdown, no goodbye)
#   cluster.sh stop N      stop node N (SIGTERM, a clean shutdown), keep its data
#   cluster.sh start N     start node N on its data; wait until it has rejoined
#   cluster.sh master      print N of the elected cluster manager (master)
#   cluster.sh wait-green  wait until all three nodes are in and the cluster is green
#
# Discovery is explicit: each node gets an opensearch.yml (the runner loads
# config/opensearch.yml of its node directory when present) with its own
# transport port, the three transport addresses as seed hosts and as the
# initial cluster managers. Without it the nodes rely on dev-mode
# auto-bootstrap and the default seed ports 9300-9305, which other people's
# test nodes on this machine may hold; a node could then form a cluster of
# its own.
#
# Ports: HTTP REPLAYLINK_CLUSTER_PORT..+2 (default 9264..9266, below 9300, as
# the runner needs); transport 100 higher (9364..9366).
# State: $REPLAYLINK_CLUSTER_STATE (default .es-cluster/ at the repo root).
# Heap: -Xmx512m per node, so three fit beside the tests on 2 cores, 24 GiB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${REPLAYLINK_CLUSTER_STATE:-$here/../../.es-cluster}
port0=${REPLAYLINK_CLUSTER_PORT:-9264}
name="replaylink-cluster-$port0"
nodes=(1 2 3)

if ((port0 + 2 > 9299)); then
  echo "cluster.sh: REPLAYLINK_CLUSTER_PORT $port0: the runner only serves HTTP ports up to 9299" >&2; exit 2
fi

classpath() {
  if [[ ! -s $here/classpath.txt ]]; then
    mvn -q -B -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$here/classpath.txt" >&2
  fi
  cat "$here/classpath.txt"
}

http_port() { echo $((port0 + $1 - 1)); }
transport_port() { echo $((port0 + 100 + $1 - 1)); }
url() { echo "http://127.0.0.1:$(http_port "$1")"; }
dir() { echo "$state/node$1"; }
running() { [[ -f $(dir "$1")/pid ]] && kill -0 "$(cat "$(dir "$1")/pid")" 2>/dev/null; }

check_node() {
  case ${1:-} in 1|2|3) ;; *) echo "cluster.sh: want a node number, 1, 2 or 3" >&2; exit 2 ;; esac
}

# config writes the node's opensearch.yml before its first start.
config() {
  local n=$1 d; d=$(dir "$n")
  local seeds="" t
  for t in "${nodes[@]}"; do seeds+="\"127.0.0.1:$(transport_port "$t")\","; done
  seeds="[${seeds%,}]"
  mkdir -p "$d/data/node_1/config"
  cat > "$d/data/node_1/config/opensearch.yml" <<EOF
network.host: 127.0.0.1
transport.port: $(transport_port "$n")
discovery.seed_hosts: $seeds
cluster.initial_cluster_manager_nodes: $seeds
EOF
}

launch() {
  local n=$1 d; d=$(dir "$n")
  running "$n" && return 0
  [[ -f $d/data/node_1/config/opensearch.yml ]] || config "$n"
  : > "$d/node.log"
  nohup java -Xms256m -Xmx512m -XX:+UseSerialGC -cp "$(classpath)" \
    org.codelibs.opensearch.runner.OpenSearchRunner \
    -basePath "$d/data" -numOfNode 1 -baseHttpPort "$(($(http_port "$n") - 1))" -clusterName "$name" \
    >"$d/node.log" 2>&1 < /dev/null &
  echo $! > "$d/pid"
}

# members prints how many nodes the cluster has, as node N sees it (0 when
# it does not answer or has no elected cluster manager yet).
members() {
  local out
  out=$(curl -fsS -m 2 "$(url "$1")/_cat/nodes?h=ip" 2>/dev/null) || { echo 0; return; }
  grep -c . <<<"$out" || true
}

# wait_joined waits until node N answers as one of three.
wait_joined() {
  local n=$1
  for _ in $(seq 1 240); do
    if ! running "$n"; then
      echo "cluster.sh: node $n exited; last lines of $(dir "$n")/node.log:" >&2; tail -20 "$(dir "$n")/node.log" >&2; exit 1
    fi
    if (( $(members "$n") == 3 )); then return 0; fi
    sleep 0.5
  done
  echo "cluster.sh: node $n did not join a cluster of three within 120 s; see $(dir "$n")/node.log" >&2
  exit 1
}

wait_green() {
  local n
  for n in "${nodes[@]}"; do running "$n" && wait_joined "$n"; done
  for n in "${nodes[@]}"; do
    running "$n" || continue
    curl -fsS -m 130 "$(url "$n")/_cluster/health?wait_for_status=green&wait_for_nodes=3&timeout=120s" >/dev/null
    return 0
  done
  echo "cluster.sh: no node is running" >&2; exit 1
}

stop_node() {
  local n=$1 d; d=$(dir "$n")
  if running "$n"; then
    local pid; pid=$(cat "$d/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$d/pid"
}

kill_node() {
  local n=$1 d; d=$(dir "$n")
  if running "$n"; then
    local pid; pid=$(cat "$d/pid")
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$d/pid"
}

urls() {
  local out="" n
  for n in "${nodes[@]}"; do out+="$(url "$n"),"; done
  echo "${out%,}"
}

master() {
  local n addr
  for n in "${nodes[@]}"; do
    running "$n" || continue
    # The elected node's HTTP address, as the cluster itself says.
    addr=$(curl -fsS -m 2 "$(url "$n")/_cat/nodes?h=master,http_address" 2>/dev/null | awk '$1=="*"{print $2}') || continue
    [[ -n $addr ]] || continue
    local m
    for m in "${nodes[@]}"; do
      [[ $addr == *":$(http_port "$m")" ]] && { echo "$m"; return 0; }
    done
  done
  echo "cluster.sh: no elected cluster manager" >&2; exit 1
}

case ${1:-} in
  up)
    for n in "${nodes[@]}"; do stop_node "$n"; done
    rm -rf "$state"
    for n in "${nodes[@]}"; do mkdir -p "$(dir "$n")"; config "$n"; launch "$n"; done
    wait_green
    got=$(members 1)
    if ((got != 3)); then echo "cluster.sh: the cluster has $got nodes, want 3" >&2; exit 1; fi
    urls
    echo "search cluster $name: 3 nodes, cluster manager node $(master)" >&2 ;;
  down) for n in "${nodes[@]}"; do stop_node "$n"; done; rm -rf "$state" ;;
  urls) urls ;;
  url) check_node "${2:-}"; url "$2" ;;
  kill) check_node "${2:-}"; kill_node "$2" ;;
  stop) check_node "${2:-}"; stop_node "$2" ;;
  start) check_node "${2:-}"; launch "$2"; wait_joined "$2" ;;
  master) master ;;
  wait-green) wait_green ;;
  *) echo "usage: $0 up|down|urls|url N|kill N|stop N|start N|master|wait-green" >&2; exit 2 ;;
esac
