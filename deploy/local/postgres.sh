#!/usr/bin/env bash
# PostgreSQL from Debian's packages, as a cluster of its own ("rsvp", port 5433 by default) so it
# never touches another cluster on the machine.
# usage: postgres.sh start|stop|status|psql [ARGS...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

install() {
  if [ -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ] && command -v pg_createcluster >/dev/null; then return; fi
  [ "$(id -u)" = 0 ] || die "PostgreSQL $PG_VERSION is missing; run as root or install postgresql-$PG_VERSION"
  log "installing PostgreSQL $PG_VERSION from Debian's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PG_VERSION" postgresql-client >&2
}

cluster_status() { pg_lsclusters -h "$PG_VERSION" "$PG_CLUSTER" 2>/dev/null | awk '{print $4}'; }

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

admin_psql() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -h /var/run/postgresql "$@"; }

start() {
  install
  if [ -z "$(cluster_status)" ]; then
    log "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER on port $PG_PORT"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" \
      -- --auth-local=peer --auth-host=scram-sha-256 >&2
  fi
  # Tests run many databases side by side, hence the connection count.
  cat >"/etc/postgresql/$PG_VERSION/$PG_CLUSTER/conf.d/rsvp.conf" <<CONF
listen_addresses = '127.0.0.1'
max_connections = 400
shared_buffers = 512MB
CONF
  if [ "$(cluster_status)" != online ]; then
    log "starting PostgreSQL $PG_VERSION/$PG_CLUSTER on 127.0.0.1:$PG_PORT"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >&2
  fi
  wait_for "postgresql" 60 pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "postgresql did not start"
  # Idempotent: the role may create databases, so each test can own one.
  admin_psql -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE "$PG_USER" LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SQL
  if [ -z "$(admin_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" ]; then
    admin_psql -d postgres -c "CREATE DATABASE \"$PG_DATABASE\" OWNER \"$PG_USER\""
  fi
}

stop() {
  if [ "$(cluster_status)" = online ]; then
    log "stopping PostgreSQL $PG_VERSION/$PG_CLUSTER"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast >&2
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) echo "postgresql: $(cluster_status || true) ($PG_VERSION/$PG_CLUSTER on 127.0.0.1:$PG_PORT)" ;;
  psql) shift; exec psql "$DATABASE_URL" "$@" ;;
  *) echo "usage: $0 start|stop|status|psql [ARGS...]" >&2; exit 2 ;;
esac
