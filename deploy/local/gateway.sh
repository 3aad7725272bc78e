#!/usr/bin/env bash
# The gateway: nginx (Debian's package) on RSVP_GATEWAY_PORT, the one public base URL in front of
# the command API and the query API, with deploy/gateway/nginx.conf rendered into a prefix of its
# own in $RSVP_STATE_DIR/gateway (never the system's nginx service or /etc/nginx).
# usage: gateway.sh start|stop|status|install
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

dir="$RSVP_STATE_DIR/gateway"
conf="$dir/nginx.conf"
# Its logs and pid file are the operator's only, like the services' (README).
umask 077
pidfile="$dir/nginx.pid"
# Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

install() {
  if command -v nginx >/dev/null; then return; fi
  [ "$(id -u)" = 0 ] || die "nginx is missing; run as root or install Debian's nginx-light (or nginx)"
  log "installing nginx from Debian's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >&2 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2
  # The package starts the system's nginx service on port 80; rsvp's gateway is not it.
  if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl stop nginx >&2 || true
  fi
}

render() {
  mkdir -p "$dir"
  sed -e "s#@LISTEN@#127.0.0.1:$RSVP_GATEWAY_PORT#g" \
      -e "s#@COMMAND_API@#127.0.0.1:$COMMAND_API_PORT#g" \
      -e "s#@QUERY_API@#127.0.0.1:$QUERY_API_PORT#g" \
      -e "s#@STATE_DIR@#$dir#g" \
      -e "s#@MAX_BODY_BYTES@#$RSVP_MAX_BODY_BYTES#g" \
      "$RSVP_ROOT/deploy/gateway/nginx.conf" >"$conf"
}

nginx_run() { nginx -p "$dir" -e "$dir/error.log" -c "$conf" -g "pid $pidfile;" "$@"; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if running; then log "gateway already running (pid $(cat "$pidfile"))"; return; fi
  if port_open "$RSVP_GATEWAY_PORT"; then die "port $RSVP_GATEWAY_PORT (for the gateway) is taken by another process"; fi
  install
  render
  nginx_run -t -q >&2 || die "the gateway's nginx configuration ($conf) is invalid"
  log "starting the gateway (nginx) on 127.0.0.1:$RSVP_GATEWAY_PORT"
  nginx_run >&2
  wait_for "gateway" 30 port_open "$RSVP_GATEWAY_PORT" || { tail -n 20 "$dir/error.log" >&2; die "the gateway did not start"; }
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    log "stopping the gateway (pid $pid)"
    # QUIT: finish the requests in flight, then exit.
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  status) if running; then echo "gateway: running (pid $(cat "$pidfile")) on http://127.0.0.1:$RSVP_GATEWAY_PORT"; else echo "gateway: stopped"; fi ;;
  *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
esac
