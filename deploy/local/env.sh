# Shared settings for the local (no Docker) deployment. Sourced by the other scripts.
# Every value can be overridden from the environment.

RSVP_ROOT="${RSVP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# Everything the local deployment writes (Kafka data, logs, pids) lives here; git ignores it.
RSVP_STATE_DIR="${RSVP_STATE_DIR:-$RSVP_ROOT/.local}"
# Build cache outside the clone so a fresh clone builds fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rsvp/target}"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:-1g}"
KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS="${KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS:-6000}"
# Jars fetched from Maven Central are shared by every clone on the machine.
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$HOME/.cache/rsvp/kafka-lib}"

PG_VERSION="${PG_VERSION:-15}"
PG_CLUSTER="${PG_CLUSTER:-rsvp}"
PG_PORT="${PG_PORT:-5433}"
PG_USER="${PG_USER:-rsvp}"
PG_PASSWORD="${PG_PASSWORD:-rsvp}"
PG_DATABASE="${PG_DATABASE:-rsvp}"

COMMAND_API_PORT="${COMMAND_API_PORT:-8081}"
QUERY_API_PORT="${QUERY_API_PORT:-8082}"
PROJECTOR_PORT="${PROJECTOR_PORT:-8083}"
DISPATCHER_PORT="${DISPATCHER_PORT:-8084}"
# The gateway (nginx): the one public base URL in front of both APIs.
RSVP_GATEWAY_PORT="${RSVP_GATEWAY_PORT:-8080}"
# The command API's largest request body; the gateway takes the same.
export RSVP_MAX_BODY_BYTES="${RSVP_MAX_BODY_BYTES:-1048576}"

# Mailpit (github.com/axllent/mailpit): the local SMTP server that catches every email the services
# send, with a web UI to read them. Built once from its Go module into $RSVP_BIN_DIR, shared by
# every clone on the machine; its mailbox lives in $RSVP_STATE_DIR/mailpit.
RSVP_BIN_DIR="${RSVP_BIN_DIR:-$HOME/.cache/rsvp/bin}"
MAILPIT_VERSION="${MAILPIT_VERSION:-v1.27.11}"
MAILPIT_SMTP_PORT="${MAILPIT_SMTP_PORT:-1025}"
MAILPIT_HTTP_PORT="${MAILPIT_HTTP_PORT:-8025}"
MAILPIT_BIN="${MAILPIT_BIN:-$RSVP_BIN_DIR/mailpit}"

export RSVP_KAFKA_BROKERS="${RSVP_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
export RSVP_KAFKA_TOPIC="${RSVP_KAFKA_TOPIC:-rsvp.invite-events}"
export RSVP_KAFKA_PARTITIONS="${RSVP_KAFKA_PARTITIONS:-12}"
export DATABASE_URL="${DATABASE_URL:-postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DATABASE}"
# Where the services send email (SMTP, no TLS, no login: Mailpit locally) and the From they use.
export RSVP_SMTP_URL="${RSVP_SMTP_URL:-smtp://127.0.0.1:$MAILPIT_SMTP_PORT}"
export RSVP_MAIL_FROM="${RSVP_MAIL_FROM:-rsvp <invites@rsvp.localhost>}"

log() { printf '\033[1m[rsvp]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.5 s until it succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
  log "$what is up"
}

# write_secret FILE: stdin into FILE, readable by its owner only (0600) from the first byte on.
write_secret() {
  local file="$1"
  (umask 077 && cat >"$file.new") && mv -f "$file.new" "$file"
}

# ensure_demo_key RSVP_ADMIN: the demo tenant's key file, made once (a second run prints the same
# key) and kept to its owner; a key file an older run left readable to others is tightened.
ensure_demo_key() {
  local admin="$1" key_file="$RSVP_STATE_DIR/demo-api-key"
  mkdir -p "$RSVP_STATE_DIR"
  if [ ! -s "$key_file" ] || ! "$admin" check-key "$(cat "$key_file")" >/dev/null 2>&1; then
    "$admin" create-key --tenant demo --label demo | write_secret "$key_file"
  fi
  chmod 600 "$key_file"
  echo "$key_file"
}

# ensure_token VARIABLE FILE: exports VARIABLE; when it is not set, a random token is made once,
# kept in $RSVP_STATE_DIR/FILE (readable by its owner only) and used from then on.
ensure_token() {
  local variable="$1" token_file="$RSVP_STATE_DIR/$2"
  if [ -z "${!variable:-}" ]; then
    mkdir -p "$RSVP_STATE_DIR"
    [ -s "$token_file" ] || od -An -tx1 -N32 /dev/urandom | tr -d ' \n' | write_secret "$token_file"
    chmod 600 "$token_file"
    printf -v "$variable" '%s' "$(cat "$token_file")"
  fi
  export "${variable?}"
}

# ensure_metrics_token: RSVP_METRICS_TOKEN, the operator token `/metrics` requires (metrics-token).
ensure_metrics_token() { ensure_token RSVP_METRICS_TOKEN metrics-token; }

# ensure_master_key: RSVP_MASTER_KEY, the root secret of personal-data encryption, blind indexes
# and link tokens (master-key). Losing it loses every sealed value: keep it with the database's
# backups' secrets, apart from them.
ensure_master_key() { ensure_token RSVP_MASTER_KEY master-key; }

# ensure_dispatcher_token: RSVP_DISPATCHER_TOKEN, the token between the dispatcher and the command
# API's internal routes (dispatcher-token).
ensure_dispatcher_token() { ensure_token RSVP_DISPATCHER_TOKEN dispatcher-token; }

# ensure_audit_signing_key: RSVP_AUDIT_SIGNING_KEY, the key the writer signs the log's checkpoints
# with (base64 of a 32-byte ed25519 seed), made once in $RSVP_STATE_DIR/audit-signing-key.
# `rsvp-audit public-key` prints its public key.
ensure_audit_signing_key() {
  local key_file="$RSVP_STATE_DIR/audit-signing-key"
  if [ -z "${RSVP_AUDIT_SIGNING_KEY:-}" ]; then
    mkdir -p "$RSVP_STATE_DIR"
    [ -s "$key_file" ] || head -c 32 /dev/urandom | base64 | write_secret "$key_file"
    chmod 600 "$key_file"
    RSVP_AUDIT_SIGNING_KEY="$(cat "$key_file")"
  fi
  export RSVP_AUDIT_SIGNING_KEY
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
