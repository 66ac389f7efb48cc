#!/usr/bin/env bash
# A throwaway Hazelcast 5.7 member on 127.0.0.1 for the tests and local runs (one jar from Maven Central).
#
#   scripts/hazelcast.sh fetch            download the jar (idempotent) into $CELLCELLY_DOWNLOADS/hazelcast-5.7.0/
#   scripts/hazelcast.sh start DIR PORT   write DIR/hazelcast.xml, start a member in the background on PORT,
#                                         log to DIR/hazelcast.log, pid in DIR/hazelcast.pid, wait (60 s) for PORT
#   scripts/hazelcast.sh stop DIR         stop the member started in DIR
#   scripts/hazelcast.sh jar              print the jar's path
#
# Never `pip install hazelcast` (an empty placeholder that breaks `hazelcast-python-client`).
set -euo pipefail

VERSION=5.7.0
CACHE_DIR="${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/hazelcast-$VERSION"
JAR="$CACHE_DIR/hazelcast-$VERSION.jar"
START_TIMEOUT=60

# shellcheck source=scripts/lib.sh
ME=hazelcast.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch() {
  if [ -s "$JAR" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven); cannot fetch com.hazelcast:hazelcast:$VERSION"
  mkdir -p "$CACHE_DIR"
  # into a temporary directory first, so an interrupted download never looks like a jar;
  # mvn needs no project for dependency:copy: run it there so no pom.xml nearby is picked up
  local tmp
  tmp="$(mktemp -d "$CACHE_DIR/.fetch.XXXXXX")"
  if ! (cd "$tmp" && mvn -q -B dependency:copy \
    -Dartifact="com.hazelcast:hazelcast:$VERSION" -DoutputDirectory="$tmp" >"$CACHE_DIR/fetch.log" 2>&1); then
    rm -rf "$tmp"
    tail -n 20 "$CACHE_DIR/fetch.log" >&2 || true
    die "fetching com.hazelcast:hazelcast:$VERSION from Maven Central failed (see $CACHE_DIR/fetch.log)"
  fi
  mv -f "$tmp/hazelcast-$VERSION.jar" "$JAR" 2>/dev/null || true
  rm -rf "$tmp"
  [ -s "$JAR" ] || die "mvn finished but $JAR is missing"
}

start() {
  local dir="${1:?usage: hazelcast.sh start DIR PORT}" port="${2:?usage: hazelcast.sh start DIR PORT}"
  command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"
  [ -s "$JAR" ] || die "$JAR missing: run scripts/hazelcast.sh fetch first"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if port_open "$port"; then
    die "port $port on 127.0.0.1 is already in use"
  fi
  cat >"$dir/hazelcast.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<hazelcast xmlns="http://www.hazelcast.com/schema/config"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
           xsi:schemaLocation="http://www.hazelcast.com/schema/config
           http://www.hazelcast.com/schema/config/hazelcast-config-5.7.xsd">
    <cluster-name>cellcelly</cluster-name>
    <properties>
        <property name="hazelcast.phone.home.enabled">false</property>
        <property name="hazelcast.logging.type">jdk</property>
        <!-- near-cache invalidations go out at once, not in batches (default: up to 10 s late) -->
        <property name="hazelcast.map.invalidation.batch.enabled">false</property>
    </properties>
    <network>
        <port auto-increment="false">$port</port>
        <join>
            <auto-detection enabled="false"/>
            <multicast enabled="false"/>
            <tcp-ip enabled="true">
                <member>127.0.0.1:$port</member>
            </tcp-ip>
        </join>
        <interfaces enabled="true">
            <interface>127.0.0.1</interface>
        </interfaces>
    </network>
</hazelcast>
EOF
  # setsid: the member gets its own session, so it survives this shell and can be stopped by pid.
  # --add-*: the internal API access Hazelcast asks for on Java 9+ (otherwise a WARNING and slower paths).
  setsid java -Xmx256m \
    --add-modules java.se --add-exports java.base/jdk.internal.ref=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.management/sun.management=ALL-UNNAMED \
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
    -Dhazelcast.config="$dir/hazelcast.xml" \
    -Dhazelcast.phone.home.enabled=false \
    -Dhazelcast.local.localAddress=127.0.0.1 \
    -Djava.net.preferIPv4Stack=true \
    -cp "$JAR" com.hazelcast.core.server.HazelcastMemberStarter \
    >"$dir/hazelcast.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/hazelcast.pid"
  # ready = the port accepts connections and the member logged "is STARTED"
  wait_started "the Hazelcast member" "$dir/hazelcast.pid" "$dir/hazelcast.log" "$port" "$START_TIMEOUT" ' is STARTED'
  echo "hazelcast member pid $pid on 127.0.0.1:$port (log: $dir/hazelcast.log)"
}

stop() {
  local dir="${1:?usage: hazelcast.sh stop DIR}"
  stop_pidfile "$dir/hazelcast.pid" 10 # up to 10 s for a graceful shutdown
}

case "${1:-}" in
fetch) fetch ;;
start)
  shift
  start "$@"
  ;;
stop)
  shift
  stop "$@"
  ;;
jar) echo "$JAR" ;;
*) die "usage: hazelcast.sh fetch | start DIR PORT | stop DIR | jar" ;;
esac
