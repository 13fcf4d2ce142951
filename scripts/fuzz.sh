#!/usr/bin/env bash
# `make fuzz`: schemathesis with a random seed (every check, positive data acceptance included)
# against a live gunicorn in production settings on PostgreSQL. The derandomized run is part of
# the test suite (tests/*/test_schema_fuzz.py); this one looks for what those fixed cases miss.
#   DATABASE_URL       a PostgreSQL server; the run creates and drops its own database on it
#   REDIS_URL          optional, as in production
#   FUZZ_SEED          replay a reported seed (default: random, printed first)
#   FUZZ_MAX_EXAMPLES  cases per operation (default 50)
#   FUZZ_SECONDS       time budget for the whole run (default 300)
#   FUZZ_ROLE          call as an agent of this role instead of staff (its 403s and 404s for other
#                      roles' objects are expected; what to look for is a 500)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
# Absolute, so the tools still resolve after the run moves to its scratch directory.
BIN=$(cd "$(dirname "$PYTHON")" && pwd)
PY=$BIN/$(basename "$PYTHON")
SEED=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server}"
FUZZ_DB=orchestrator_fuzz_$$
ADMIN_URL=$DATABASE_URL
export DATABASE_URL=${ADMIN_URL%/*}/$FUZZ_DB
# Production settings, as a deployment runs them (served over plain HTTP on loopback).
export DEBUG=false SECRET_KEY=fuzz-$SEED-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=false DJANGO_SETTINGS_MODULE=orchestrator.settings
export STATIC_ROOT=${TMPDIR:-/tmp}/$FUZZ_DB-static

database() {
  "$PY" - "$ADMIN_URL" "$FUZZ_DB" "$1" <<'PYTHON'
import sys, psycopg
url, name, action = sys.argv[1:]
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if action == "create":
        conn.execute(f'CREATE DATABASE "{name}"')
PYTHON
}

server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  database drop || true
  rm -rf "$STATIC_ROOT" "${SCRATCH:-}"
}
trap cleanup EXIT INT TERM

echo "fuzz seed: $SEED (replay with FUZZ_SEED=$SEED)"
database create
SCRATCH=""
"$PY" manage.py collectstatic --noinput -v0
"$PY" manage.py migrate --noinput -v0
if [ -n "${FUZZ_ROLE:-}" ]; then
  TOKEN=$("$PY" manage.py issue_token --role "$FUZZ_ROLE" --name fuzz 2>/dev/null | tail -n 1)
else
  TOKEN=$("$PY" manage.py issue_token --role operations --staff --name fuzz 2>/dev/null | tail -n 1)
fi
PORT=$("$PY" -c "from tests.net import free_port; print(free_port())")
"$BIN/gunicorn" orchestrator.wsgi --bind "127.0.0.1:$PORT" --workers 2 --threads 4 --log-level warning &
server=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break
  sleep 0.2
done

# Run from a scratch directory: schemathesis keeps its example cache in the working directory.
SCRATCH=$(mktemp -d)
CONFIG=$PWD/scripts/fuzz.toml
cd "$SCRATCH"
"$BIN/schemathesis" --config-file "$CONFIG" run "http://127.0.0.1:$PORT/api/schema/" \
  --header "Authorization: Bearer $TOKEN" \
  --seed "$SEED" \
  --max-examples "${FUZZ_MAX_EXAMPLES:-50}" \
  --max-time "${FUZZ_SECONDS:-300}" \
  --workers 2
