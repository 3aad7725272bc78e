#!/usr/bin/env bash
# `make bench`: builds (release), starts a Kafka, a PostgreSQL cluster, a Mailpit and the services of
# its own, fresh, on ports apart from `make run`'s (which it leaves alone), runs every benchmark figure
# with its raw baseline (bench/, the `rsvp-bench` binary), writes BENCHMARKS.md and benchmarks/,
# then stops and forgets what it started (BENCH_KEEP=1 keeps it running).
#
# Settings (environment): BENCH_SECONDS (10, per measured run), BENCH_ROUNDS (3),
# BENCH_WRITE_LOADS (0.5,0.8), BENCH_CATCHUP_EVENTS (300000), BENCH_RESTART_EVENTS (1000000),
# BENCH_LIST_INVITES (1000000), BENCH_EMAILS (2000), BENCH_EMAILS_ROUNDS (1), BENCH_KAFKA_PERF_RECORDS (500000),
# BENCH_PGBENCH_SCALE (10), BENCH_OUT_DIR (the repository root), BENCH_NOTES (a paragraph added to
# BENCHMARKS.md); BENCH_KAFKA_PORT (19092), BENCH_PG_PORT (5434), BENCH_PORT_BASE (18080: the
# services on +1..+4, Mailpit's SMTP on +5 and its UI on +6).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RSVP_ROOT="$(cd "$here/../.." && pwd)"

# Everything of the bench apart from `make run`: its own state dir, ports and cluster.
export RSVP_STATE_DIR="$RSVP_ROOT/.local/bench"
export KAFKA_PORT="${BENCH_KAFKA_PORT:-19092}" KAFKA_CONTROLLER_PORT="$(( ${BENCH_KAFKA_PORT:-19092} + 1 ))"
export PG_CLUSTER=rsvp-bench PG_PORT="${BENCH_PG_PORT:-5434}" PG_DATABASE=rsvp
port_base="${BENCH_PORT_BASE:-18080}"
export COMMAND_API_PORT=$((port_base + 1)) QUERY_API_PORT=$((port_base + 2)) PROJECTOR_PORT=$((port_base + 3))
export DISPATCHER_PORT=$((port_base + 4)) MAILPIT_SMTP_PORT=$((port_base + 5)) MAILPIT_HTTP_PORT=$((port_base + 6))
unset RSVP_KAFKA_BROKERS DATABASE_URL RSVP_QUERY_API_URL RSVP_KAFKA_TOPIC RSVP_COMMAND_API_URL RSVP_PUBLIC_URL RSVP_SMTP_URL
# The benchmark measures what the services can do, not the per-key limiter in front of them.
export RSVP_RATE_LIMIT_PER_SECOND=0
source "$here/env.sh"

command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
if ! command -v gnuplot >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    log "installing gnuplot (for the plots) from Debian's packages"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >&2
  else
    log "gnuplot is missing: BENCHMARKS.md is written, the plots are not (install gnuplot-nox)"
  fi
fi
oha="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
if [ ! -x "$oha" ]; then
  log "installing oha (the HTTP load generator) from crates.io"
  cargo install --locked oha --version 1.16.0 >&2
fi

cd "$RSVP_ROOT"
log "building the services, the bench and the in-process benches (release)"
cargo build --release --locked --bins
bench_bin() {
  cargo bench --locked --no-run --message-format=json -p "$1" --bench "$2" 2>/dev/null |
    grep -o "\"executable\":\"[^\"]*/$2-[^\"]*\"" | tail -n 1 | cut -d'"' -f4
}
export BENCH_RESTART_BIN="$(bench_bin command-api restart)"
export BENCH_CATCHUP_BIN="$(bench_bin projector catchup)"
export BENCH_LIST_BIN="$(bench_bin query-api list)"
export BENCH_EMAILS_BIN="$(bench_bin dispatcher emails)"
for b in "$BENCH_RESTART_BIN" "$BENCH_CATCHUP_BIN" "$BENCH_LIST_BIN" "$BENCH_EMAILS_BIN"; do
  [ -x "$b" ] || die "a bench did not build"
done

stop_all() {
  "$here/services.sh" stop || true
  "$here/mailpit.sh" stop || true
  "$here/kafka.sh" stop || true
  "$here/postgres.sh" stop || true
  pg_dropcluster "$PG_VERSION" "$PG_CLUSTER" 2>/dev/null || true
}
# Fresh every time: no data of an earlier run weighs on this one.
stop_all
rm -rf "$RSVP_STATE_DIR"
[ "${BENCH_KEEP:-0}" = 1 ] || trap stop_all EXIT

"$here/postgres.sh" start
"$here/kafka.sh" start
"$here/kafka.sh" create-topic "$RSVP_KAFKA_TOPIC" "$RSVP_KAFKA_PARTITIONS"
# The stack's dispatcher sends to a Mailpit of the bench's own (the emails figure starts its own).
"$here/mailpit.sh" start
"$here/services.sh" start
key="$("$CARGO_TARGET_DIR/release/rsvp-admin" create-key --tenant bench --label bench)"

pids="kafka=$(cat "$RSVP_STATE_DIR/kafka/kafka.pid"),postgresql=$(head -n 1 "/var/lib/postgresql/$PG_VERSION/$PG_CLUSTER/postmaster.pid")"
for s in command-api query-api projector dispatcher; do pids="$pids,$s=$(cat "$RSVP_STATE_DIR/run/$s.pid")"; done

commit="$(git rev-parse --short=12 HEAD) (\"$(git log -1 --format=%s)\", $(git log -1 --format=%cd --date=format:'%Y-%m-%d %H:%M')"
[ -z "$(git status --porcelain --untracked-files=no -- ':!BENCHMARKS.md' ':!benchmarks')" ] || commit="$commit, with uncommitted changes"
commit="$commit)"

log "benchmarking (about 15 minutes)"
BENCH_COMMAND_URL="http://127.0.0.1:$COMMAND_API_PORT" \
BENCH_QUERY_URL="http://127.0.0.1:$QUERY_API_PORT" \
BENCH_API_KEY="$key" \
BENCH_PIDS="$pids" \
BENCH_OHA="$oha" \
BENCH_COMMIT="$commit" \
BENCH_OUT_DIR="${BENCH_OUT_DIR:-$RSVP_ROOT}" \
RSVP_BENCH_DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres" \
RSVP_TEST_MAILPIT="$MAILPIT_BIN" \
PG_PORT="$PG_PORT" PG_USER="$PG_USER" PG_PASSWORD="$PG_PASSWORD" KAFKA_LIB_DIR="$KAFKA_LIB_DIR" \
  "$CARGO_TARGET_DIR/release/rsvp-bench"
