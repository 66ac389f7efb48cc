#!/usr/bin/env bash
# A throwaway single-node VoltDB 10.1.1 (community edition) on 127.0.0.1, from Maven Central jars.
#
#   scripts/voltdb.sh fetch                    jars (scripts/voltdb/pom.xml) + the Confluent stub jar into
#                                              the cache (idempotent)
#   scripts/voltdb.sh jar OUT                  compile CellCelly's stored procedures
#                                              (services/cellcelly/adapters/voltdb/procedures) into OUT
#   scripts/voltdb.sh start DIR PORT [ADMIN]   initialise DIR/db (first time only), start a server with its
#                                              client port on PORT, wait (90 s) for it to finish starting
#   scripts/voltdb.sh stop DIR                 stop the server started in DIR
#
# Cache: ${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/voltdb-10.1.1/lib (override with VOLTDB_LIB).
# Heap: VOLTDB_HEAP (default "-Xms128m -Xmx512m"); sites (partitions): VOLTDB_SITES (default 2).
# No command log and no snapshots (both off in DIR/deployment.xml): a restart starts empty. The
# database and schema are loaded by the client (cellcelly.adapters.balance_voltdb.ensure_schema).
# Security: VOLTDB_USERS="name:password[,name:password...]" turns it on (provider "hash"), every
# user an administrator; unset, no login. VOLTDB_SECURITY_XML: those elements verbatim instead. A name has no blank, ":" or ","; a password may hold ":"
# (the first one splits) but no ",". Read by the first start only (`initialize` keeps it in DIR/db).
set -euo pipefail

VERSION=10.1.1
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
CACHE="${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}"
LIB="${VOLTDB_LIB:-$CACHE/voltdb-$VERSION/lib}"
HEAP="${VOLTDB_HEAP:--Xms128m -Xmx512m}"
SITES="${VOLTDB_SITES:-2}"
START_TIMEOUT="${VOLTDB_START_TIMEOUT:-90}"
PROCEDURES="$REPO/services/cellcelly/adapters/voltdb/procedures"

# shellcheck source=scripts/lib.sh
ME=voltdb.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch() {
  if [ -f "$LIB/.complete" ]; then
    return 0
  fi
  need java "install a JDK 17+, e.g. apt-get install openjdk-17-jdk-headless"
  need javac "the Confluent stubs and the stored procedures are compiled: apt-get install openjdk-17-jdk-headless"
  need mvn "install Maven, e.g. apt-get install maven"
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  cp "$HERE/voltdb/pom.xml" "$work/pom.xml"
  echo "voltdb.sh: fetching VoltDB $VERSION with Maven into $LIB" >&2
  if ! (cd "$work" && mvn -q -B -ntp dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$work/lib" >"$work/mvn.log" 2>&1); then
    tail -n 40 "$work/mvn.log" >&2 || true
    die "Maven could not fetch org.voltdb:voltdb:$VERSION and its libraries (see above)"
  fi
  [ -f "$work/lib/voltdb-$VERSION.jar" ] || die "voltdb-$VERSION.jar missing after fetch"
  # Confluent's schema-registry client is not on Maven Central; VoltDB only needs its types to load
  mkdir -p "$work/stubs"
  # shellcheck disable=SC2046
  javac --release 8 -nowarn -cp "$work/lib/avro-1.9.2.jar" -d "$work/stubs" \
    $(find "$HERE/voltdb/stubs" -name '*.java') || die "compiling the Confluent stubs failed"
  jar cf "$work/lib/zz-confluent-stubs.jar" -C "$work/stubs" .
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
  echo "voltdb.sh: $(find "$LIB" -name '*.jar' | wc -l) jars in $LIB" >&2
}

build_jar() {
  local out="${1:?usage: voltdb.sh jar OUT}"
  need javac "apt-get install openjdk-17-jdk-headless"
  [ -f "$LIB/.complete" ] || die "VoltDB jars not in $LIB: run scripts/voltdb.sh fetch first"
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  # shellcheck disable=SC2046
  javac --release 8 -nowarn -Xlint:none -cp "$LIB/voltdb-$VERSION.jar" -d "$work" \
    $(find "$PROCEDURES" -name '*.java') || die "compiling $PROCEDURES failed"
  mkdir -p "$(dirname "$out")"
  # the same sources give the same bytes (fixed entry dates), and an unchanged jar is left as it is:
  # a new one each time made the services image's `COPY services/` miss the cache, and the
  # compiled build after it ran again on every image build
  jar --create --file "$out.tmp.$$" --date=2000-01-01T00:00:02Z -C "$work" .
  if cmp -s "$out.tmp.$$" "$out"; then
    rm -f "$out.tmp.$$"
  else
    mv -f "$out.tmp.$$" "$out"
  fi
}

# "$1" as the value of a double-quoted XML attribute. The replacements are quoted: bash 5.2's
# patsub_replacement would turn an unquoted & in them into the matched text.
xml_attr() {
  local s="$1"
  s="${s//&/"&amp;"}"
  s="${s//</"&lt;"}"
  s="${s//>/"&gt;"}"
  s="${s//\"/"&quot;"}"
  printf '%s' "$s"
}

# The <security> and <users> elements of deployment.xml for VOLTDB_USERS; nothing when it is unset.
# VOLTDB_SECURITY_XML, when set, is used as they are instead (the operator's own, in its test).
security_xml() {
  if [ -n "${VOLTDB_SECURITY_XML:-}" ]; then
    printf '%s\n' "$VOLTDB_SECURITY_XML"
    return 0
  fi
  [ -n "${VOLTDB_USERS:-}" ] || return 0
  local entry name password users=()
  IFS=, read -r -a users <<<"$VOLTDB_USERS"
  printf '    <security enabled="true" provider="hash"/>\n    <users>\n'
  for entry in "${users[@]}"; do
    name="${entry%%:*}" password="${entry#*:}"
    if [ "$name" = "$entry" ] || [ -z "$name" ] || [ -z "$password" ] || [[ "$name" =~ [[:space:]] ]]; then
      die "VOLTDB_USERS: \"$name\" is not name:password (a name without blanks, a password not empty)"
    fi
    printf '        <user name="%s" password="%s" roles="administrator"/>\n' \
      "$(xml_attr "$name")" "$(xml_attr "$password")"
  done
  printf '    </users>\n'
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir="${1:?usage: voltdb.sh start DIR PORT [ADMINPORT]}" port="${2:?usage: voltdb.sh start DIR PORT [ADMINPORT]}"
  need java "install a JDK 17+"
  [ -f "$LIB/.complete" ] || die "VoltDB jars not in $LIB: run scripts/voltdb.sh fetch first"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if pid_alive "$dir/voltdb.pid"; then
    die "already running in $dir (pid $(cat "$dir/voltdb.pid"))"
  fi
  if port_open "$port"; then
    die "port $port on 127.0.0.1 is already in use"
  fi
  # the mesh address (internal port) is part of what a restart finds again: keep the ports
  if [ ! -f "$dir/ports" ]; then
    echo "${3:-$(free_port)} $(free_port) $(free_port) $(free_port)" >"$dir/ports"
  fi
  local admin internal zk replication
  read -r admin internal zk replication <"$dir/ports"
  local security
  security="$(security_xml)"
  cat >"$dir/deployment.xml" <<EOF
<?xml version="1.0"?>
<deployment>
    <cluster sitesperhost="$SITES" kfactor="0"/>
    <commandlog enabled="false"/>
    <snapshot enabled="false"/>
    <httpd enabled="false"/>
${security:+$security
}</deployment>
EOF
  cat >"$dir/log4j.xml" <<EOF
<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE log4j:configuration SYSTEM "log4j.dtd">
<log4j:configuration xmlns:log4j="http://jakarta.apache.org/log4j/">
  <appender name="console" class="org.apache.log4j.ConsoleAppender">
    <param name="Target" value="System.out"/>
    <layout class="org.apache.log4j.PatternLayout">
      <param name="ConversionPattern" value="%d %-5p [%t] %c: %m%n"/>
    </layout>
  </appender>
  <root>
    <priority value="info"/>
    <appender-ref ref="console"/>
  </root>
</log4j:configuration>
EOF
  local cp
  cp="$(find "$LIB" -name '*.jar' | sort | tr '\n' ':')"
  local java_opts=($HEAP -XX:+UseG1GC -Djava.awt.headless=true
    # Java 17: VoltNetwork swaps sun.nio.ch.SelectorImpl's selected-key set by reflection; without
    # this every client connection's network thread dies (NPE) and calls hang
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    # the OSGi framework (importers/exporters) reaches into these; opened so it does not warn
    --add-opens java.base/java.net=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED
    -Dlog4j.configuration="file://$dir/log4j.xml"
    -cp "$cp")
  # the server unpacks native libraries and looks for a license beside its working directory
  cd "$dir"
  if [ ! -f "$dir/db/voltdbroot/.initialized" ]; then
    if ! java "${java_opts[@]}" org.voltdb.VoltDB initialize voltdbroot "$dir/db" \
      deployment "$dir/deployment.xml" >"$dir/init.log" 2>&1; then
      tail -n 30 "$dir/init.log" >&2 || true
      die "voltdb initialize failed (see $dir/init.log)"
    fi
  fi
  : >"$dir/voltdb.log"
  # `probe` is what `voltdb start` runs; every interface on loopback only
  setsid java "${java_opts[@]}" org.voltdb.VoltDB probe voltdbroot "$dir/db" \
    mesh "127.0.0.1:$internal" internalinterface 127.0.0.1 externalinterface 127.0.0.1 \
    port "$port" adminport "$admin" internalport "$internal" zkport "$zk" replicationport "$replication" \
    >>"$dir/voltdb.log" 2>&1 </dev/null &
  echo $! >"$dir/voltdb.pid"
  wait_started VoltDB "$dir/voltdb.pid" "$dir/voltdb.log" "$port" "$START_TIMEOUT" "Server completed initialization"
  echo "voltdb.sh: VoltDB $VERSION on 127.0.0.1:$port (admin $admin), pid $(cat "$dir/voltdb.pid"), dir $dir" >&2
}

stop() {
  local dir="${1:?usage: voltdb.sh stop DIR}"
  stop_pidfile "$dir/voltdb.pid" 30 # 30 s to shut down, then KILL
}

case "${1:-}" in
fetch) fetch ;;
jar)
  shift
  build_jar "$@"
  ;;
start)
  shift
  start "$@"
  ;;
stop)
  shift
  stop "$@"
  ;;
*)
  echo "usage: $0 fetch | jar OUT | start DIR PORT [ADMINPORT] | stop DIR" >&2
  exit 2
  ;;
esac
