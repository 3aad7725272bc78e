#!/usr/bin/env bash
# Provisions what the tests need (Kafka, PostgreSQL) when it is missing, then runs every test.
# Extra arguments go to `cargo test` (e.g. `make test ARGS='-p events'`).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
source "$here/env.sh"

command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
"$here/postgres.sh" start
"$here/kafka.sh" start

# Each test creates its own topic and database; these say where the servers are.
export RSVP_TEST_KAFKA_BROKERS="$RSVP_KAFKA_BROKERS"
export RSVP_TEST_DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"

cd "$RSVP_ROOT"
log "building"
cargo build --locked --bins --tests
log "testing"
cargo test --locked --workspace "$@"
