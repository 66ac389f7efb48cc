#!/usr/bin/env bash
# The official postgres image's environment contract on Debian's PostgreSQL: an empty $PGDATA is
# initialised once (superuser $POSTGRES_USER with $POSTGRES_PASSWORD, database $POSTGRES_DB,
# scram-sha-256 for every TCP client, trust only on the Unix socket inside the container), then
# the server runs in the foreground. Writes nothing outside $PGDATA and /var/run/postgresql, so the
# root filesystem may be read-only.
set -Eeuo pipefail

# `docker run IMAGE -c key=value` as with the official image: options go to postgres
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA

log() { # one line per event, as the server's own log lines: time, level, message
  printf '%s entrypoint %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" >&2
}

initialise() {
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    log ERROR "$PGDATA holds no database and POSTGRES_PASSWORD is empty: refusing a superuser without a password"
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  log INFO "initialising $PGDATA for $POSTGRES_USER"
  # the password through a pipe, never a file or the command line; extra options as the official
  # image takes them (word-split on purpose)
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 ${POSTGRES_INITDB_ARGS:-} >&2
  printf '\n# every TCP client logs in with a password (the official image appends the same)\nhost all all all scram-sha-256\n' \
    >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # a server on the Unix socket alone for the set-up: nobody reaches it from outside meanwhile
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >&2
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username="$POSTGRES_USER" --no-password --dbname=postgres \
      --set=db="$POSTGRES_DB" --quiet <<<'CREATE DATABASE :"db";'
    pg_ctl -D "$PGDATA" -m fast -w stop >&2
  fi
  log INFO "initialised: database $POSTGRES_DB"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initialise
fi
exec "$@"
