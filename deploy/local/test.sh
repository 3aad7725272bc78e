#!/usr/bin/env bash
# Provisions what the tests need (Kafka, PostgreSQL) when it is missing, then runs every test.
# Arguments go to `cargo test` in place of the default selection (e.g. `make test ARGS='-p events'`).
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
out="$RSVP_STATE_DIR/test-output.log"
mkdir -p "$RSVP_STATE_DIR"
set +e
# Arguments, when given, replace the default selection (the whole workspace, no doc-tests).
if [ "$#" -eq 0 ]; then set -- --workspace --lib --bins --tests; fi
cargo test --locked "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$out"
exit "$status"
