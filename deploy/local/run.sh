#!/usr/bin/env bash
# Brings the whole system up: Kafka, PostgreSQL, Mailpit (the local SMTP server), the services, and
# a demo tenant.
# Safe to run again while everything is up.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
source "$here/env.sh"

command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
# Mailpit first, so a missing Go is said before the long build (built once, then kept).
"$here/mailpit.sh" install
log "building the services (release)"
(cd "$RSVP_ROOT" && cargo build --release --locked --bins)

"$here/postgres.sh" start
"$here/kafka.sh" start
"$here/kafka.sh" create-topic "$RSVP_KAFKA_TOPIC" "$RSVP_KAFKA_PARTITIONS"
"$here/mailpit.sh" start
"$here/services.sh" start
"$here/gateway.sh" start

# The demo key is kept so that a second run prints the same one.
key=$(cat "$(ensure_demo_key "$CARGO_TARGET_DIR/release/rsvp-admin")")

cat <<MSG

rsvp is up.
  gateway      http://127.0.0.1:$RSVP_GATEWAY_PORT   (the public base URL: GET/HEAD to the query API, the rest to the command API)
  command API  http://127.0.0.1:$COMMAND_API_PORT   (writes)
  query API    http://127.0.0.1:$QUERY_API_PORT   (reads)
  projector    http://127.0.0.1:$PROJECTOR_PORT/healthz
  dispatcher   http://127.0.0.1:$DISPATCHER_PORT/readyz   (sends the emails and webhooks)
  mailbox      http://127.0.0.1:$MAILPIT_HTTP_PORT   (Mailpit: every email the services send, none leaves the machine; SMTP on 127.0.0.1:$MAILPIT_SMTP_PORT)
  demo tenant API key: $key

Try it:
  KEY=$key
  curl -s -X POST http://127.0.0.1:$RSVP_GATEWAY_PORT/v1/invites \\
    -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' \\
    -d '{"inviter":{"id":"user-1","name":"Ann"},"targets":[{"type":"email","value":"bob@example.com"}],"expires_in_days":7,"send":"email"}'
  curl -s http://127.0.0.1:$RSVP_GATEWAY_PORT/v1/invites -H "Authorization: Bearer \$KEY"
  # the invitation email, with its link: http://127.0.0.1:$MAILPIT_HTTP_PORT

Metrics (operator token in $RSVP_STATE_DIR/metrics-token, readable by you only):
  curl -s http://127.0.0.1:$QUERY_API_PORT/metrics -H "Authorization: Bearer \$(cat $RSVP_STATE_DIR/metrics-token)"

Logs: $RSVP_STATE_DIR/logs   Stop: make stop
MSG
