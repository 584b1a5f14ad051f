#!/usr/bin/env bash
# A private PostgreSQL for development and tests: its own data dir, 127.0.0.1 only, no Unix socket,
# trust authentication, and a database for fraud-ray. Never touches the system's own cluster.
#
#   scripts/postgres.sh start    initdb on first use, start, create the database, print its URL
#   scripts/postgres.sh stop     stop it (fast shutdown: open sessions are ended)
#   scripts/postgres.sh status   say whether it runs; exit 0 if it does, 3 if it does not
#
# Environment (defaults in brackets):
#   POSTGRES_PORT   port on 127.0.0.1 [5432]
#   POSTGRES_DIR    data, configuration and log [.cache/postgres]; as root, the server runs as the
#                   user `postgres`, which must be able to reach this folder
#   POSTGRES_DB     database to create [fraud_ray]
#   POSTGRES_BIN    folder of initdb, pg_ctl and psql [the newest /usr/lib/postgresql/*/bin]
#   POSTGRES_START_TIMEOUT  seconds to wait for the server to accept connections [60]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${POSTGRES_PORT:-5432}"
# Absolute: the server runs as another user, from another working directory.
DIR="$(realpath -m "${POSTGRES_DIR:-$ROOT/.cache/postgres}")"
DB="${POSTGRES_DB:-fraud_ray}"
START_TIMEOUT="${POSTGRES_START_TIMEOUT:-60}"
DATA="$DIR/data"
LOG="$DIR/postgres.log"
SUPERUSER=postgres

say() { echo "postgres.sh: $*"; }
die() {
  echo "postgres.sh: $*" >&2
  exit 1
}

# Debian keeps the server programs out of PATH, under one folder per major version.
find_bin() {
  if [[ -n "${POSTGRES_BIN:-}" ]]; then
    echo "$POSTGRES_BIN"
    return
  fi
  local newest
  newest="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)"
  if [[ -n "$newest" ]]; then
    dirname "$newest"
  elif command -v initdb >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
  fi
}

BIN="$(find_bin)"
[[ -n "$BIN" && -x "$BIN/initdb" && -x "$BIN/pg_ctl" && -x "$BIN/psql" ]] ||
  die "the PostgreSQL server is not installed: apt-get install -y postgresql (.ci/run and make services do)"

# PostgreSQL refuses to run as root: as root, every server command runs as the user postgres.
as_owner() {
  if ((EUID == 0)); then
    runuser -u "$SUPERUSER" -- "$@"
  else
    "$@"
  fi
}

prepare_dir() {
  mkdir -p "$DIR"
  if ((EUID == 0)); then
    if ! id -u "$SUPERUSER" >/dev/null 2>&1; then
      useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$SUPERUSER" ||
        die "cannot create the user $SUPERUSER to run PostgreSQL as"
    fi
    chown "$SUPERUSER:" "$DIR"
    as_owner test -w "$DIR" ||
      die "user $SUPERUSER cannot write to $DIR: a parent folder is closed to it; choose a POSTGRES_DIR under /tmp"
  fi
}

running() {
  [[ -f "$DATA/PG_VERSION" ]] && as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# The port the running server listens on, which a changed POSTGRES_PORT does not move.
running_port() {
  sed -n 4p "$DATA/postmaster.pid"
}

url() {
  echo "postgresql+psycopg://$SUPERUSER@127.0.0.1:$1/$DB"
}

start() {
  if running; then
    say "already running on 127.0.0.1:$(running_port), data in $DATA"
    url "$(running_port)"
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is already taken by another process"
  fi
  prepare_dir
  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    say "initialising a cluster in $DATA"
    if ! as_owner "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust --encoding=UTF8 \
      --locale=C >"$DIR/initdb.log" 2>&1; then
      die "initdb failed: $(tail -n 20 "$DIR/initdb.log")"
    fi
    echo "include = 'fraud_ray.conf'" | as_owner tee -a "$DATA/postgresql.conf" >/dev/null
  fi
  # Rewritten on every start, so that a new port or address takes effect on an existing cluster.
  as_owner tee "$DATA/fraud_ray.conf" >/dev/null <<EOF
# Written by scripts/postgres.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
EOF
  say "starting PostgreSQL $("$BIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $DATA"
  if ! as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t "$START_TIMEOUT" >/dev/null; then
    die "PostgreSQL did not start; last lines of $LOG:
$(tail -n 20 "$LOG" 2>/dev/null)"
  fi
  local psql=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
    "${psql[@]}" -c "CREATE DATABASE \"$DB\"" >/dev/null || die "cannot create the database $DB"
  fi
  say "ready"
  url "$PORT"
}

stop() {
  if ! running; then
    say "not running (data in $DATA)"
    return 0
  fi
  as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w >/dev/null || die "pg_ctl stop failed; see $LOG"
  say "stopped"
}

status() {
  if running; then
    say "running on 127.0.0.1:$(running_port), data in $DATA"
  else
    say "not running (data in $DATA)"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
