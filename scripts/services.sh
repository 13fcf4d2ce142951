#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on loopback for the test suite and benchmarks.
#   scripts/services.sh install   apt packages if missing
#   scripts/services.sh start     init + start both (idempotent), print the env to use
#   scripts/services.sh stop      stop both and delete their data
# Ports and the data folder come from PG_PORT, REDIS_PORT and SERVICES_DIR, the number of sets from
# SERVICE_SETS (below). The test server trades durability for speed (fsync off); PG_DURABLE=1
# (make bench) configures it as production runs it: fsync, synchronous_commit and full_page_writes on.
set -euo pipefail

PG_PORT=${PG_PORT:-25432}
REDIS_PORT=${REDIS_PORT:-63799}
SERVICES_DIR=${SERVICES_DIR:-/tmp/orchestrator-services-$PG_PORT}
PG_DATA=$SERVICES_DIR/pg
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

as_postgres() { su postgres -s /bin/sh -c "$*"; }

install_packages() {
  local missing=()
  [ -n "$PG_BIN" ] || missing+=(postgresql postgresql-contrib)
  command -v redis-server >/dev/null || missing+=(redis-server)
  # The dashboard's browser test drives Debian's chromium (no browser download at test time).
  [ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
  # tests/test_transaction_pooler.py runs the app behind a real PgBouncer in transaction mode.
  [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
  # The HTTP load of make bench; tests/test_bench_load_checks_answers.py holds its answer checks.
  command -v wrk >/dev/null || missing+=(wrk)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

start() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  mkdir -p "$SERVICES_DIR"
  chmod 755 "$SERVICES_DIR"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    command install -d -o postgres -g postgres "$PG_DATA"
    as_postgres "$PG_BIN/initdb -D $PG_DATA -U postgres --auth=trust -E UTF8 --no-locale" >/dev/null
    cat >>"$PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DATA'
max_connections = 200
shared_buffers = 256MB
CONF
    if [ "${PG_DURABLE:-0}" = 1 ]; then
      printf 'fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n' >>"$PG_DATA/postgresql.conf"
    else
      printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$PG_DATA/postgresql.conf"
    fi
  fi
  if ! as_postgres "$PG_BIN/pg_ctl -D $PG_DATA status" >/dev/null 2>&1; then
    as_postgres "$PG_BIN/pg_ctl -D $PG_DATA -l $PG_DATA/server.log -w start" >/dev/null
  fi
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" --dir "$SERVICES_DIR"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/orchestrator"
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

stop() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  if [ -n "$PG_BIN" ] && [ -f "$PG_DATA/PG_VERSION" ]; then
    as_postgres "$PG_BIN/pg_ctl -D $PG_DATA -m immediate stop" >/dev/null 2>&1 || true
  fi
  rm -rf "$SERVICES_DIR"
}

# SERVICE_SETS=N starts (or stops) N sets, the k-th on PG_PORT + 10k and REDIS_PORT + 10k: one per
# pytest-xdist worker (tests/settings.py), since PostgreSQL's snapshots and advisory locks are shared
# by every database of a server. Keep other servers' ports off base + 10, + 20 and + 30. The step
# of 10 is tests/service_sets.py's SET_PORT_STEP too.
for_each_set() {
  local sets=${SERVICE_SETS:-1} base_pg=$PG_PORT base_redis=$REDIS_PORT base_dir=${SERVICES_DIR%/}
  case $sets in
    '' | *[!0-9]* | 0*) echo "SERVICE_SETS must be a positive number, not '$sets'" >&2; exit 2 ;;
  esac
  for k in $(seq 0 $((sets - 1))); do
    PG_PORT=$((base_pg + 10 * k)) REDIS_PORT=$((base_redis + 10 * k))
    SERVICES_DIR=$base_dir
    [ "$k" -eq 0 ] || SERVICES_DIR=$base_dir-set$k
    PG_DATA=$SERVICES_DIR/pg
    "$@"
  done
}

case "${1:-}" in
  install) install_packages ;;
  start) install_packages; for_each_set start ;;
  stop) for_each_set stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
