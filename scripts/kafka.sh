#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft: broker and controller in one JVM, no ZooKeeper, no Docker) for
# development and tests. The broker's jars come from Maven Central through deploy/kafka/pom.xml.
#
#   scripts/kafka.sh fetch    copy the broker's jars into the cache (once; again when the pom changes)
#   scripts/kafka.sh start    fetch if needed, format the storage on first use, start, wait until ready
#   scripts/kafka.sh stop     stop the broker this data dir belongs to (controlled shutdown)
#   scripts/kafka.sh status   say whether it runs; exit 0 if it does, 3 if it does not
#
# Environment (defaults in brackets):
#   KAFKA_PORT             client listener on 127.0.0.1 [9092]
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 [KAFKA_PORT + 1]
#   KAFKA_DIR              config, data, logs and pid file of this broker [.cache/kafka/broker]
#   KAFKA_CACHE            where the jars go [.cache/kafka]
#   KAFKA_HEAP             JVM maximum heap: the broker shares two cores and the memory with Ray [512m]
#   KAFKA_PARTITIONS       partitions of automatically created topics [4]
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to be ready [120]
#   KAFKA_STOP_TIMEOUT     seconds to wait for a controlled shutdown before killing it [60]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/deploy/kafka/pom.xml"
LOG_CONFIG="$ROOT/deploy/kafka/log4j2.properties"
# Absolute, because the broker's config names its data dir and the pid check names its config.
CACHE="$(realpath -m "${KAFKA_CACHE:-$ROOT/.cache/kafka}")"
LIB="$CACHE/lib"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
DIR="$(realpath -m "${KAFKA_DIR:-$CACHE/broker}")"
HEAP="${KAFKA_HEAP:-512m}"
PARTITIONS="${KAFKA_PARTITIONS:-4}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"
PID_FILE="$DIR/kafka.pid"
CONFIG="$DIR/server.properties"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"

say() { echo "kafka.sh: $*"; }
die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null || die "$1 is not installed: $2"
}

# The pid of the broker serving $DIR, or nothing: a pid file left by a dead broker, or whose pid the
# system has since given to another process, does not count.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(<"$PID_FILE")"
  if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $CONFIG"; then
    echo "$pid"
  fi
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

fetch() {
  need java "apt-get install -y openjdk-17-jre-headless"
  need mvn "apt-get install -y maven"
  [[ -n "$VERSION" ]] || die "no <kafka.version> in $POM"
  mkdir -p "$CACHE"
  # Two test sessions starting at once must not copy into the same folder.
  exec 9>"$CACHE/.fetch.lock"
  flock 9
  local stamp
  stamp="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [[ -f "$LIB/.pom.sha256" && "$(<"$LIB/.pom.sha256")" == "$stamp" ]]; then
    exec 9>&-
    return 0
  fi
  say "fetching kafka_2.13:$VERSION and its dependencies from Maven Central into $LIB"
  local staging="$CACHE/lib.partial" output="$CACHE/mvn.log"
  rm -rf "$staging"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DoutputDirectory="$staging" >"$output" 2>&1; then
    rm -rf "$staging"
    die "mvn failed to fetch kafka_2.13:$VERSION: $(tail -n 20 "$output")"
  fi
  [[ -f "$staging/kafka_2.13-$VERSION.jar" ]] || die "mvn did not copy kafka_2.13-$VERSION.jar into $staging"
  echo "$stamp" >"$staging/.pom.sha256"
  rm -rf "$LIB"
  mv "$staging" "$LIB"
  exec 9>&-
  say "kafka $VERSION jars in $LIB"
}

write_config() {
  mkdir -p "$DIR/data"
  cat >"$CONFIG" <<EOF
# Written by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/data
# One node: every internal topic has one replica, and one in-sync replica is enough.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A dev broker serves a handful of groups and transactional producers: fifty partitions for each
# internal topic would only slow every restart.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.partitions=$PARTITIONS
num.network.threads=2
num.io.threads=4
EOF
}

start() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    say "already running (pid $pid) on 127.0.0.1:$PORT, data in $DIR"
    return 0
  fi
  for port in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$port"; then
      die "port $port on 127.0.0.1 is already taken by another process"
    fi
  done
  fetch
  write_config
  local java_opts=(-Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG_CONFIG" -Dkafka.logs.dir="$DIR")
  if [[ ! -f "$DIR/data/meta.properties" ]]; then
    # Kafka's own cluster ids are 16 random bytes in URL-safe base64, and never start with '-'.
    local cluster_id
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    while [[ "$cluster_id" == -* ]]; do
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    if ! java "${java_opts[@]}" -cp "$LIB/*" kafka.tools.StorageTool format \
      --cluster-id "$cluster_id" --config "$CONFIG" --ignore-formatted >"$DIR/format.log" 2>&1; then
      die "formatting the storage in $DIR/data failed: $(tail -n 20 "$DIR/format.log")"
    fi
  fi
  # Readiness is judged on the lines this start writes, not on an earlier run's.
  local log="$DIR/server.log" offset=0
  [[ -f "$log" ]] && offset="$(stat -c %s "$log")"
  say "starting kafka $VERSION on 127.0.0.1:$PORT (controller $CONTROLLER_PORT), data in $DIR"
  nohup java "${java_opts[@]}" -cp "$LIB/*" kafka.Kafka "$CONFIG" >"$DIR/kafka.out" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$PORT" && tail -c +"$((offset + 1))" "$log" 2>/dev/null | grep -q "Kafka Server started"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      die "kafka exited while starting; last lines of $DIR/kafka.out and $log:
$(tail -n 20 "$DIR/kafka.out" 2>/dev/null)
$(tail -c +"$((offset + 1))" "$log" 2>/dev/null | grep -E 'ERROR|FATAL' | tail -n 20)"
    fi
    if ((SECONDS >= deadline)); then
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      die "kafka was not ready on 127.0.0.1:$PORT after ${START_TIMEOUT}s and was killed; see $log"
    fi
    sleep 0.2
  done
  say "kafka ready (pid $pid) on 127.0.0.1:$PORT"
}

stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PID_FILE"
    say "not running (data in $DIR)"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      kill -KILL "$pid" 2>/dev/null || true
      say "kafka (pid $pid) did not shut down within ${STOP_TIMEOUT}s and was killed"
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  say "stopped (pid $pid)"
}

status() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    say "running (pid $pid) on 127.0.0.1:$PORT, data in $DIR"
  else
    say "not running (data in $DIR)"
    return 3
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 fetch|start|stop|status" >&2
    exit 2
    ;;
esac
