# Shared by scripts/kafka.sh, hazelcast.sh and voltdb.sh: one copy of how a throwaway Java server
# is waited for and stopped. Source it after setting ME (the script's name, for messages).
# shellcheck shell=bash

die() {
  echo "$ME: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH ($2)"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() { # PIDFILE
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Wait until PORT accepts connections (and LOG has READY, when given). The server dying first, or
# TIMEOUT seconds passing, prints the log's tail and fails; a timed-out server is stopped first.
wait_started() { # WHAT PIDFILE LOG PORT TIMEOUT [READY]
  local what="$1" pidfile="$2" log="$3" port="$4" timeout="$5" ready="${6:-}"
  local deadline=$((SECONDS + timeout))
  until port_open "$port" && { [ -z "$ready" ] || grep -q "$ready" "$log"; }; do
    if ! pid_alive "$pidfile"; then
      tail -n 40 "$log" >&2 || true
      rm -f "$pidfile"
      die "$what exited during start (see $log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$log" >&2 || true
      stop_pidfile "$pidfile" 30
      die "$what did not finish starting on 127.0.0.1:$port within ${timeout}s (see $log)"
    fi
    sleep 0.2
  done
}

# TERM the process in PIDFILE, KILL it after SECONDS, forget the pid file. No pid file: nothing to do.
stop_pidfile() { # PIDFILE SECONDS
  local pidfile="$1" seconds="$2"
  [ -f "$pidfile" ] || return 0
  local pid i
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((seconds * 5))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$ME: pid $pid did not stop in $seconds s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$pidfile"
}
