#!/usr/bin/env bash
# The rsvp services (release builds) as background processes: the projector, the two APIs and the
# dispatcher.
# usage: services.sh start|stop|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# The services' logs and pid files are the operator's only.
umask 077
run_dir="$RSVP_STATE_DIR/run"
log_dir="$RSVP_STATE_DIR/logs"
bin_dir="$CARGO_TARGET_DIR/release"
mkdir -p "$run_dir" "$log_dir"

export COMMAND_API_PORT QUERY_API_PORT PROJECTOR_PORT DISPATCHER_PORT
# The dispatcher records deliveries through the command API (its internal routes).
export RSVP_COMMAND_API_URL="${RSVP_COMMAND_API_URL:-http://127.0.0.1:$COMMAND_API_PORT}"
# Links the services hand out (Location, next/previous, the invite link) point at the gateway.
export RSVP_QUERY_API_URL="${RSVP_QUERY_API_URL:-http://127.0.0.1:$RSVP_GATEWAY_PORT}"
export RSVP_PUBLIC_URL="${RSVP_PUBLIC_URL:-http://127.0.0.1:$RSVP_GATEWAY_PORT}"

running() { [ -f "$run_dir/$1.pid" ] && kill -0 "$(cat "$run_dir/$1.pid")" 2>/dev/null; }

healthy() { curl -fsS -o /dev/null "http://127.0.0.1:$1/$2"; }

start_one() {
  local name="$1" port="$2" probe="${3:-healthz}"
  if running "$name"; then log "$name already running (pid $(cat "$run_dir/$name.pid"))"; return; fi
  if port_open "$port"; then die "port $port (for $name) is taken by another process"; fi
  log "starting $name on 127.0.0.1:$port"
  setsid "$bin_dir/$name" >>"$log_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$run_dir/$name.pid"
  wait_for "$name" 120 healthy "$port" "$probe" || { tail -n 30 "$log_dir/$name.log" >&2; die "$name did not start"; }
}

stop_one() {
  local name="$1"
  if running "$name"; then
    local pid; pid=$(cat "$run_dir/$name.pid")
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$run_dir/$name.pid"
}

case "${1:-}" in
  start)
    ensure_metrics_token
    ensure_dispatcher_token
    ensure_master_key
    ensure_audit_signing_key
    # The projector applies the migrations, so it goes first.
    start_one projector "$PROJECTOR_PORT"
    start_one query-api "$QUERY_API_PORT"
    # Ready once it holds the writer lease and has read the log to its end.
    start_one command-api "$COMMAND_API_PORT" readyz
    # Ready once it follows the log; it sends through the SMTP server at $RSVP_SMTP_URL.
    start_one dispatcher "$DISPATCHER_PORT" readyz
    ;;
  stop) for s in dispatcher command-api query-api projector; do stop_one "$s"; done ;;
  status)
    for s in projector query-api command-api dispatcher; do
      if running "$s"; then echo "$s: running (pid $(cat "$run_dir/$s.pid"))"; else echo "$s: stopped"; fi
    done
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
