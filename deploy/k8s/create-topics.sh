#!/bin/sh
# Creates rsvp's Kafka topics unless they exist, with Kafka's own kafka-topics.sh (the apache/kafka
# image). The one-shot init job of deploy/compose.yaml and of deploy/k8s/ (job-init.yaml) run it;
# a second run changes nothing.
#
#   <topic>               the event log, the system of record: RSVP_KAFKA_PARTITIONS (12)
#   <topic>.writer-lease  the command API's writer lease (one partition; nothing is ever written)
#   <topic>.dlq           the projector's dead letters (one partition)
#   <topic>.audit         the writer's signed checkpoints (one partition), read by rsvp-audit
# All kept forever (retention.ms=-1, retention.bytes=-1), as deploy/local/kafka.sh does. The
# services create the last three themselves when missing, with the brokers' defaults; made here
# they get the replication asked for.
#
# RSVP_KAFKA_REPLICATION_FACTOR and RSVP_KAFKA_MIN_INSYNC_REPLICAS, when empty, leave both to the
# brokers (default.replication.factor, min.insync.replicas): compose's brokers set them per profile.
# It retries until the brokers take the topics (they may still be starting, or too few may be up
# for the replication factor), RSVP_KAFKA_WAIT_SECONDS at most.
set -eu
bin="${KAFKA_BIN:-/opt/kafka/bin}"
brokers="${RSVP_KAFKA_BROKERS:?RSVP_KAFKA_BROKERS is needed}"
topic="${RSVP_KAFKA_TOPIC:-rsvp.invite-events}"
partitions="${RSVP_KAFKA_PARTITIONS:-12}"
replication="${RSVP_KAFKA_REPLICATION_FACTOR:-}"
min_insync="${RSVP_KAFKA_MIN_INSYNC_REPLICAS:-}"
wait_seconds="${RSVP_KAFKA_WAIT_SECONDS:-300}"

create() {
  name="$1" count="$2"
  set -- --bootstrap-server "$brokers" --create --if-not-exists --topic "$name" --partitions "$count" \
    --config retention.ms=-1 --config retention.bytes=-1
  if [ -n "$replication" ]; then set -- "$@" --replication-factor "$replication"; fi
  if [ -n "$min_insync" ]; then set -- "$@" --config "min.insync.replicas=$min_insync"; fi
  "$bin/kafka-topics.sh" "$@"
}

started="$(date +%s)"
for spec in "$topic:$partitions" "$topic.writer-lease:1" "$topic.dlq:1" "$topic.audit:1"; do
  name="${spec%:*}" count="${spec##*:}"
  until create "$name" "$count"; do
    if [ $(($(date +%s) - started)) -ge "$wait_seconds" ]; then
      echo "create-topics: Kafka at $brokers did not take topic $name within ${wait_seconds}s" >&2
      exit 1
    fi
    echo "create-topics: Kafka at $brokers is not ready for $name yet; retrying in 5s" >&2
    sleep 5
  done
done
"$bin/kafka-topics.sh" --bootstrap-server "$brokers" --describe --topic "$topic" | head -n 1
echo "create-topics: $topic and its .writer-lease, .dlq and .audit topics are there"
