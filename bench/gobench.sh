#!/usr/bin/env bash
# Compares the Go microbenchmarks of two commits with benchstat.
#
#   bench/gobench.sh OLD NEW        e.g. bench/gobench.sh HEAD~1 HEAD
#   bench/gobench.sh OLD .          . is the working tree as it is
#
# Each commit is exported with `git archive` into a temporary directory (the
# working tree and the index are not touched) and benchmarked with
#   go test -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" ./...
# (BENCH defaults to ., COUNT to 6, the fewest benchstat trusts). The raw
# outputs stay in $OUT (default /tmp/replaylink-gobench).
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 OLD NEW   (commits, or . for the working tree)" >&2; exit 2; }
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-/tmp/replaylink-gobench}
count=${COUNT:-6}
bench=${BENCH:-.}
mkdir -p "$out"

run() {
  local rev=$1 dir name
  if [[ $rev == . ]]; then
    dir=$root name=worktree
  else
    name=$(git rev-parse --short "$rev")
    dir=$out/src-$name
    rm -rf "$dir" && mkdir -p "$dir"
    git archive "$rev" | tar -x -C "$dir"
  fi
  echo "== $rev ($name): go test -bench $bench -count $count" >&2
  (cd "$dir" && go test -run '^$' -bench "$bench" -benchmem -count "$count" ./... ) > "$out/$name.txt"
  echo "$out/$name.txt"
}

old=$(run "$1")
new=$(run "$2")
go run golang.org/x/perf/cmd/benchstat@latest "$old" "$new"
