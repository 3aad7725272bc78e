#!/usr/bin/env bash
# Stops the services, Kafka and PostgreSQL started by run.sh. Data stays for the next run.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/services.sh" stop
"$here/kafka.sh" stop
"$here/postgres.sh" stop
