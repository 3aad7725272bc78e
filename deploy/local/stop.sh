#!/usr/bin/env bash
# Stops the gateway, the services, Mailpit, Kafka and PostgreSQL started by run.sh. Data (the
# mailbox too) stays for the next run.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/gateway.sh" stop
"$here/services.sh" stop
"$here/mailpit.sh" stop
"$here/kafka.sh" stop
"$here/postgres.sh" stop
