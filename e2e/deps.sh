#!/usr/bin/env bash
# Installs what the end-to-end test (e2e/) needs; idempotent, and quick (well
# under a second) when everything is already there:
#  - Debian's chromium (the browser that runs OpenReplay's tracker);
#  - Flask and gunicorn for examples/flask (pip, examples/flask/requirements.txt);
#  - the frontend example's npm packages (npm ci) and its bundle (esbuild);
#  - a compose client (Debian's docker-compose), which needs no engine to
#    validate docker-compose.yml (examples' TestComposeConfig).
# The same steps are the examples' READMEs; `make test` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  echo "== e2e deps: apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if [[ ! -f /tmp/.replaylink-apt-updated ]]; then
    apt-get update -qq >/dev/null && touch /tmp/.replaylink-apt-updated
  fi
  apt-get install -y -qq "$@" >/dev/null
}

# The browser.
if [[ ! -x /usr/bin/chromium ]]; then
  apt_install chromium
fi

# The backend: Flask (and gunicorn for the README's production variant).
if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-pip
fi
if ! python3 -c 'import flask, gunicorn' >/dev/null 2>&1; then
  echo "== e2e deps: pip install -r examples/flask/requirements.txt"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  # Debian's own python refuses system-wide pip installs (PEP 668); this is a
  # throwaway test machine, so say it is meant.
  python3 -m pip install -q --disable-pip-version-check -r examples/flask/requirements.txt 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages -r examples/flask/requirements.txt
fi

# The page: OpenReplay's tracker from npm, bundled with esbuild.
if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
fe=examples/frontend
if [[ ! -f $fe/node_modules/.package-lock.json || $fe/package-lock.json -nt $fe/node_modules/.package-lock.json ]]; then
  echo "== e2e deps: npm ci in $fe"
  (cd "$fe" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [[ ! -f $fe/dist/bundle.js || $fe/src/main.js -nt $fe/dist/bundle.js || $fe/package-lock.json -nt $fe/dist/bundle.js ]]; then
  echo "== e2e deps: npm run build in $fe"
  (cd "$fe" && npm run --silent build)
fi

# The compose client, for `docker-compose config` on docker-compose.yml.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  apt_install docker-compose
fi
