#!/usr/bin/env bash
# A throwaway single-node Apache Kafka (KRaft, broker+controller in one JVM) on 127.0.0.1.
#
#   scripts/kafka.sh fetch            Kafka 4.4.0 jars + dependencies + log4j2 into the cache (idempotent)
#   scripts/kafka.sh fetch-tools      kafka-tools 4.4.0 (AclCommand: kafka-acls.sh) beside them, in tools/
#   scripts/kafka.sh start DIR PORT   format DIR/data (first time only), start, wait for PORT (90 s)
#   scripts/kafka.sh stop DIR         stop the broker started in DIR (its data stays)
#
# KAFKA_SASL_USERS="name:password[,name:password]" adds a second listener, SASL_PLAINTEXT with PLAIN and
# SCRAM-SHA-512 for those users, on a port written to DIR/sasl.port (kept across restarts). SCRAM
# credentials are stored when DIR/data is formatted (first start only). Passwords must not hold
# '"' ',' '=' ']' or '\'.
# Cache: ${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/kafka-4.4.0/lib (override with KAFKA_LIB).
# Heap: KAFKA_HEAP (default "-Xms128m -Xmx512m").
# DIR holds server.properties, log4j2.properties, kafka.log, kafka.pid, controller.port and data/.
# Starting again on the same DIR keeps the data (and the controller port): durability across restarts.
set -euo pipefail

KAFKA_VERSION=4.4.0
LOG4J_VERSION=2.24.3
SLF4J_VERSION=2.0.17
CACHE="${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}"
LIB="${KAFKA_LIB:-$CACHE/kafka-$KAFKA_VERSION/lib}"
HEAP="${KAFKA_HEAP:--Xms128m -Xmx512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"

# shellcheck source=scripts/lib.sh
ME=kafka.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch() {
  if [ -f "$LIB/.complete" ]; then
    return 0
  fi
  need java "install a JDK 17+, e.g. apt-get install openjdk-17-jre-headless"
  need mvn "install Maven, e.g. apt-get install maven"
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cellcelly</groupId>
  <artifactId>kafka-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <!-- Kafka's pom brings slf4j-api 1.7, which cannot see the SLF4J 2 binding above -->
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  echo "kafka.sh: fetching Kafka $KAFKA_VERSION with Maven into $LIB" >&2
  if ! (cd "$work" && mvn -q -B -ntp dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$work/lib" >"$work/mvn.log" 2>&1); then
    tail -n 40 "$work/mvn.log" >&2 || true
    die "Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see above)"
  fi
  ls "$work/lib"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"
  touch "$work/lib/.complete"
  mkdir -p "$(dirname "$LIB")"
  rm -rf "$LIB.tmp.$$"
  mv "$work/lib" "$LIB.tmp.$$"
  if [ -f "$LIB/.complete" ]; then # someone else finished first
    rm -rf "$LIB.tmp.$$"
  else
    rm -rf "$LIB"
    mv "$LIB.tmp.$$" "$LIB"
  fi
  echo "kafka.sh: $(find "$LIB" -name '*.jar' | wc -l) jars in $LIB" >&2
}

# The command-line tools' jar alone (its other dependencies are the broker's, already in lib/): what
# the operator's ACL job runs (kafka-acls.sh) in the image, run against a local broker in its test.
fetch_tools() {
  local tools
  tools="$(dirname "$LIB")/tools"
  if [ -f "$tools/.complete" ]; then
    return 0
  fi
  need mvn "install Maven, e.g. apt-get install maven"
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  if ! mvn -q -B -ntp dependency:copy -Dartifact="org.apache.kafka:kafka-tools:$KAFKA_VERSION" \
    -DoutputDirectory="$work/tools" >"$work/mvn.log" 2>&1; then
    tail -n 40 "$work/mvn.log" >&2 || true
    die "Maven could not fetch org.apache.kafka:kafka-tools:$KAFKA_VERSION (see above)"
  fi
  touch "$work/tools/.complete"
  rm -rf "$tools.tmp.$$"
  mv "$work/tools" "$tools.tmp.$$"
  if [ -f "$tools/.complete" ]; then
    rm -rf "$tools.tmp.$$"
  else
    rm -rf "$tools"
    mv "$tools.tmp.$$" "$tools"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir="${1:?usage: kafka.sh start DIR PORT}" port="${2:?usage: kafka.sh start DIR PORT}"
  need java "install a JDK 17+"
  [ -f "$LIB/.complete" ] || die "Kafka jars not in $LIB: run scripts/kafka.sh fetch first"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if pid_alive "$dir/kafka.pid"; then
    die "already running in $dir (pid $(cat "$dir/kafka.pid"))"
  fi
  local cport
  if [ -f "$dir/controller.port" ]; then
    cport="$(cat "$dir/controller.port")" # the quorum remembers its endpoint: keep it on restart
  else
    cport="$(free_port)"
    echo "$cport" >"$dir/controller.port"
  fi
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport" sasl_conf="" scram=()
  if [ -n "${KAFKA_SASL_USERS:-}" ]; then
    local sport plain_users="" entry
    if [ -f "$dir/sasl.port" ]; then
      sport="$(cat "$dir/sasl.port")"
    else
      sport="$(free_port)"
      echo "$sport" >"$dir/sasl.port"
    fi
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$sport"
    IFS=',' read -ra entries <<<"$KAFKA_SASL_USERS"
    for entry in "${entries[@]}"; do
      plain_users="$plain_users user_${entry%%:*}=\"${entry#*:}\""
      scram+=(--add-scram "SCRAM-SHA-512=[name=${entry%%:*},password=${entry#*:}]")
    done
    sasl_conf="sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
  fi
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
$sasl_conf
log.dirs=$dir/data
num.partitions=4
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
# a one-node broker on a small machine beside its clients and a database: fewer threads than
# the defaults (3 network, 8 I/O, 10 background) contend less for the cores (make bench: SF +5-10%)
num.network.threads=2
num.io.threads=2
background.threads=2
EOF
  cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/kafka.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  local java_opts=($HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$dir/log4j2.properties")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>>"$dir/kafka.log" | tail -n 1)"
    [ -n "$cluster_id" ] || die "could not make a cluster id (see $dir/kafka.log)"
    if ! java "${java_opts[@]}" -cp "$LIB/*" kafka.tools.StorageTool format --standalone \
      -t "$cluster_id" -c "$dir/server.properties" "${scram[@]}" >>"$dir/kafka.log" 2>&1; then
      tail -n 30 "$dir/kafka.log" >&2 || true
      die "formatting $dir/data failed (see $dir/kafka.log)"
    fi
  fi
  # stdout/stderr of the JVM (GC warnings, early errors) go to the log too
  nohup java "${java_opts[@]}" -cp "$LIB/*" kafka.Kafka "$dir/server.properties" \
    >>"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
  wait_started Kafka "$dir/kafka.pid" "$dir/kafka.log" "$port" "$START_TIMEOUT"
  echo "kafka.sh: Kafka $KAFKA_VERSION on 127.0.0.1:$port (controller $cport), pid $(cat "$dir/kafka.pid"), dir $dir" >&2
}

stop() {
  local dir="${1:?usage: kafka.sh stop DIR}"
  stop_pidfile "$dir/kafka.pid" 30 # 30 s for a controlled shutdown, then KILL
}

case "${1:-}" in
fetch) fetch ;;
fetch-tools) fetch_tools ;;
start)
  shift
  start "$@"
  ;;
stop)
  shift
  stop "$@"
  ;;
*)
  echo "usage: $0 fetch | fetch-tools | start DIR PORT | stop DIR" >&2
  exit 2
  ;;
esac
