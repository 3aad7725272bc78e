#!/usr/bin/env bash
# Mailpit (github.com/axllent/mailpit), the local SMTP server: it keeps every email the services
# send (none leaves the machine) and shows them in a web UI. SMTP on 127.0.0.1:MAILPIT_SMTP_PORT,
# the UI and its API on http://127.0.0.1:MAILPIT_HTTP_PORT; its mailbox, log and pid file in
# $RSVP_STATE_DIR/mailpit.
#
# install: builds the pinned MAILPIT_VERSION from its Go module (the Go module proxy) into
# MAILPIT_BIN once, again only when the installed binary reports another version. Go is needed.
# The web UI's JavaScript is not in the Go module (upstream builds it with npm for its releases),
# so it is built here too when npm is present; without npm, SMTP and the API work and the UI is blank.
# usage: mailpit.sh install|start|stop|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

dir="$RSVP_STATE_DIR/mailpit"
pidfile="$dir/mailpit.pid"
# Its mailbox (the emails themselves) and log are the operator's only, like the services' logs.
umask 077

installed_version() {
  # `mailpit version` also asks GitHub for the latest release unless told not to.
  [ -x "$MAILPIT_BIN" ] && "$MAILPIT_BIN" version --no-release-check 2>/dev/null | awk '{ print $2; exit }'
}

install() {
  if [ "$(installed_version || true)" = "$MAILPIT_VERSION" ]; then return; fi
  command -v go >/dev/null \
    || die "Go is needed to build Mailpit $MAILPIT_VERSION (the local SMTP server); install Go 1.24+ (https://go.dev/dl/) and run again"
  log "building Mailpit $MAILPIT_VERSION into $MAILPIT_BIN"
  local src work
  src=$(cd / && go mod download -json "github.com/axllent/mailpit@$MAILPIT_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] && [ -d "$src" ] || die "cannot download github.com/axllent/mailpit@$MAILPIT_VERSION through the Go module proxy"
  mkdir -p "$(dirname "$MAILPIT_BIN")"
  work=$(mktemp -d)
  (
    trap 'rm -rf "$work"' EXIT
    # The module cache is read-only; the UI build writes into the source tree.
    { cp -R "$src/." "$work" && chmod -R u+w "$work" && cd "$work"; } || exit 1
    if command -v npm >/dev/null; then
      log "building Mailpit's web UI with npm"
      (npm ci --silent --no-audit --no-fund --ignore-scripts >&2 && npm run --silent package >&2) \
        || log "warning: Mailpit's web UI did not build; its SMTP server and API work, its UI page stays blank"
    else
      log "warning: npm is missing, so Mailpit's web UI is not built (a blank page); its SMTP server and API work"
    fi
    # The version as upstream's release builds set it, so that `mailpit version` reports it.
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" -o "$MAILPIT_BIN.new" .
  ) || die "cannot build Mailpit $MAILPIT_VERSION"
  chmod 755 "$MAILPIT_BIN.new"
  mv -f "$MAILPIT_BIN.new" "$MAILPIT_BIN"
  [ "$(installed_version || true)" = "$MAILPIT_VERSION" ] || die "the Mailpit just built does not report version $MAILPIT_VERSION"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

api_up() { curl -fsS -o /dev/null "http://127.0.0.1:$MAILPIT_HTTP_PORT/api/v1/info" && port_open "$MAILPIT_SMTP_PORT"; }

start() {
  if running; then log "mailpit already running (pid $(cat "$pidfile"))"; return; fi
  for port in "$MAILPIT_SMTP_PORT" "$MAILPIT_HTTP_PORT"; do
    if port_open "$port"; then die "port $port (for Mailpit) is taken by another process"; fi
  done
  install
  mkdir -p "$dir"
  log "starting mailpit: SMTP on 127.0.0.1:$MAILPIT_SMTP_PORT, UI on http://127.0.0.1:$MAILPIT_HTTP_PORT"
  # setsid: it outlives the shell that started it. Loopback only: it takes mail from anyone.
  setsid "$MAILPIT_BIN" --smtp "127.0.0.1:$MAILPIT_SMTP_PORT" --listen "127.0.0.1:$MAILPIT_HTTP_PORT" \
    --database "$dir/mailpit.db" --disable-version-check \
    >>"$dir/mailpit.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_for "mailpit" 30 api_up || { tail -n 20 "$dir/mailpit.log" >&2; die "mailpit did not start"; }
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    log "stopping mailpit (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status)
    if running; then
      echo "mailpit: running (pid $(cat "$pidfile")) SMTP on 127.0.0.1:$MAILPIT_SMTP_PORT, UI on http://127.0.0.1:$MAILPIT_HTTP_PORT"
    else
      echo "mailpit: stopped"
    fi
    ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
