#!/usr/bin/env bash
# Installs the real servers the runtime hooks are tested with (make test);
# idempotent, and quick when everything is there:
#  - Python: Flask, gunicorn, uvicorn, Django, Starlette/FastAPI
#    (capture/hooks/testdata/python/requirements.txt, pinned);
#  - Node: Express, Fastify, morgan (capture/hooks/testdata/node, npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

req=capture/hooks/testdata/python/requirements.txt
stamp=/tmp/.replaylink-hooks-pip-$(sha256sum "$req" | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "== hooks deps: pip install -r $req"
  python3 -m pip install -q --disable-pip-version-check -r "$req" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages -r "$req"
  touch "$stamp"
fi

app=capture/hooks/testdata/node
if [[ ! -f $app/node_modules/.package-lock.json || $app/package-lock.json -nt $app/node_modules/.package-lock.json ]]; then
  echo "== hooks deps: npm ci in $app"
  (cd "$app" && npm ci --no-audit --no-fund --loglevel=error)
fi
