#!/usr/bin/env bash
# The reliability command (`make reliability`): fuzzes every parser for a bounded time
# (deploy/local/fuzz.sh), then runs rsvp-chaos: a steady mixed load while the projector and the
# leading command-api are SIGKILLed, Kafka is restarted and PostgreSQL crashes, at least 50 faults,
# on a Kafka broker and a PostgreSQL server of its own (loopback, free ports: the ones of
# `make run` and `make test` are never touched). It checks the log, the query API and
# `projector verify` at the end, prints a summary and writes RELIABILITY.md. Arguments go to
# `rsvp-chaos run` (`--help`). Needs what `make test` needs: Java, Maven, PostgreSQL 15.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
source "$here/env.sh"

started=$SECONDS
"$here/fuzz.sh"
cd "$RSVP_ROOT"
log "building"
cargo build --locked --bins
log "injecting faults under load"
exec "$CARGO_TARGET_DIR/debug/rsvp-chaos" run --report "$RSVP_ROOT/RELIABILITY.md" \
  --command-line "make reliability${*:+ ARGS='$*'}" --revision "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --earlier-seconds $((SECONDS - started)) "$@"
