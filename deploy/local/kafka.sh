#!/usr/bin/env bash
# Apache Kafka 4.x, single node in KRaft mode, from Maven Central jars, run with the machine's Java.
# usage: kafka.sh start|stop|status|create-topic NAME [PARTITIONS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

dir="$RSVP_STATE_DIR/kafka"
pidfile="$dir/kafka.pid"
conf="$dir/server.properties"

fetch_jars() {
  if [ -f "$KAFKA_LIB_DIR/.complete" ]; then return; fi
  command -v mvn >/dev/null || die "mvn is needed to fetch Kafka's jars"
  command -v java >/dev/null || die "java (17+) is needed to run Kafka"
  log "fetching Kafka jars from Maven Central into $KAFKA_LIB_DIR"
  rm -rf "$KAFKA_LIB_DIR"
  mvn -q -B -f "$RSVP_ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIB_DIR" >&2
  touch "$KAFKA_LIB_DIR/.complete"
}

write_config() {
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$conf" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
# One node: internal topics cannot be replicated.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# The shortest session a consumer group member may ask for: the command API's writer lease
# (RSVP_WRITER_LEASE_TIMEOUT_MS) cannot go below it. Kafka's default is 6000.
group.min.session.timeout.ms=$KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS
num.partitions=1
auto.create.topics.enable=false
# The invite log is the system of record: keep it forever.
log.retention.ms=-1
log.retention.bytes=-1
CONF
  cat >"$dir/log4j2.properties" <<CONF
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$dir/logs/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
CONF
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

java_run() {
  java -Xms256m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_LIB_DIR/*" "$@"
}

start() {
  if running; then log "kafka already running (pid $(cat "$pidfile"))"; return; fi
  if port_open "$KAFKA_PORT"; then log "something already listens on $KAFKA_PORT; using it as Kafka"; return; fi
  fetch_jars
  write_config
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "formatting Kafka storage in $dir/data"
    java_run kafka.tools.StorageTool format --ignore-formatted \
      -t "$(java_run kafka.tools.StorageTool random-uuid)" \
      -c "$conf" >"$dir/logs/format.log" 2>&1 || { cat "$dir/logs/format.log" >&2; die "kafka storage format failed"; }
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT"
  # setsid: the broker outlives the shell (and the terminal) that started it.
  setsid java -Xms256m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_LIB_DIR/*" kafka.Kafka "$conf" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_for "kafka" 120 topics_list || { tail -n 40 "$dir/logs/server.log" "$dir/logs/stdout.log" >&2; die "kafka did not start"; }
}

topics() { java_run org.apache.kafka.tools.TopicCommand --bootstrap-server "$RSVP_KAFKA_BROKERS" "$@"; }
topics_list() { topics --list; }

create_topic() {
  local name="$1" partitions="${2:-$RSVP_KAFKA_PARTITIONS}"
  fetch_jars
  [ -f "$dir/log4j2.properties" ] || write_config
  if topics --describe --topic "$name" >/dev/null 2>&1; then return; fi
  log "creating topic $name ($partitions partitions, infinite retention)"
  topics --create --if-not-exists --topic "$name" --partitions "$partitions" --replication-factor 1 \
    --config retention.ms=-1 --config retention.bytes=-1 --config min.insync.replicas=1 >&2
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    log "stopping kafka (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "kafka: running (pid $(cat "$pidfile")) on 127.0.0.1:$KAFKA_PORT"; else echo "kafka: stopped"; fi ;;
  create-topic) shift; create_topic "$@" ;;
  *) echo "usage: $0 start|stop|status|create-topic NAME [PARTITIONS]" >&2; exit 2 ;;
esac
