#!/usr/bin/env bash
# Checks the deployment files (validate-deploy.sh), provisions what the tests need (Kafka,
# PostgreSQL, nginx, Mailpit, Schemathesis) when it is missing, then runs every test.
# Arguments go to `cargo test` in place of the default selection (e.g. `make test ARGS='-p events'`).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
source "$here/env.sh"

command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
# The deployment files first (seconds, no build): compose under both Kafka profiles and the
# Kubernetes manifests against their schemas; an invalid one fails the test command.
"$here/validate-deploy.sh"
"$here/postgres.sh" start
"$here/kafka.sh" start
# The dialects' end-to-end tests go through the gateway (nginx), installed when missing.
"$here/gateway.sh" install
# The email tests run Mailpit (the SMTP server) processes of their own from this binary; building
# it once needs Go.
"$here/mailpit.sh" install
export RSVP_TEST_MAILPIT="$MAILPIT_BIN"

# Schemathesis (tests/tests/schemathesis.rs), the pinned version from PyPI in a venv of its own.
schemathesis_version="$(cat "$here/schemathesis-version")"
venv="${RSVP_VENV:-$HOME/.cache/rsvp/venv}"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $schemathesis_version"; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    log "installing python3-venv"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  fi
  log "installing schemathesis $schemathesis_version into $venv"
  python3 -m venv "$venv" || die "cannot create a Python venv in $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version" \
    || die "cannot install schemathesis $schemathesis_version from PyPI"
fi
export RSVP_SCHEMATHESIS="$venv/bin/schemathesis"

# Each test creates its own topic and database; these say where the servers are.
export RSVP_TEST_KAFKA_BROKERS="$RSVP_KAFKA_BROKERS"
export RSVP_TEST_DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"

cd "$RSVP_ROOT"
log "building"
cargo build --locked --bins --tests --benches
log "testing"
out="$RSVP_STATE_DIR/test-output.log"
mkdir -p "$RSVP_STATE_DIR"
set +e
# Arguments, when given, replace the default selection (the whole workspace, no doc-tests).
if [ "$#" -eq 0 ]; then set -- --workspace --lib --bins --tests; fi
cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$out"
exit "$status"
