#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine; quick when all is there.
#  - Maven resolves the search node (testenv/es/pom.xml) on first `node.sh up`.
#  - Debian's chromium for the session-page and end-to-end browser tests.
#  - the end-to-end test's own needs (e2e/deps.sh): Flask, the npm tracker bundle.
#  - the servers the runtime hooks are tested with (testenv/hooks-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian chromium (browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
if ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && apt-get install -y -qq curl >/dev/null
fi
if [[ -f e2e/deps.sh ]]; then
  bash e2e/deps.sh
fi
bash testenv/hooks-deps.sh
