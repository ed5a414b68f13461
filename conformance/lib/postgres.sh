# shellcheck shell=bash
# PostgreSQL (Debian's postgresql-15) for the tests that run the gateway on PostgreSQL: a throwaway
# cluster in a directory of the caller's, on a loopback port, as the unprivileged `postgres` user
# (initdb refuses root). Source this file, then:
#   postgres_start DIR [PORT]   initdb in DIR/data, start on 127.0.0.1:PORT (a free port if not
#                               given), create the login role `vgtest` (password auth over TCP,
#                               allowed to create databases); exports
#                               VAULTGATE_TEST_DATABASE_URL (the admin URL the Rust test helpers
#                               create one fresh database per test from) and POSTGRES_DIR
#   postgres_pause              stops the server of POSTGRES_DIR and keeps its data (a test of
#                               "the database is down"); postgres_resume starts it again on the
#                               same port
#   postgres_stop               stops the cluster started by postgres_start (pg_ctl, then the
#                               postmaster by its PID if it lingers) and removes its data
# PGBIN overrides /usr/lib/postgresql/15/bin. fsync is off (the cluster is thrown away) unless
# POSTGRES_FSYNC=on (bench/run: durable commits, as the gateway's SQLite file has).

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

postgres_start() { # DIR [PORT]
  local dir=${1:?usage: postgres_start DIR [PORT]} port=${2:-}
  if [ ! -x "$PGBIN/initdb" ]; then
    echo "postgres: $PGBIN/initdb not found (apt-get install postgresql-15)" >&2
    return 1
  fi
  id postgres >/dev/null 2>&1 || { echo "postgres: no user 'postgres'" >&2; return 1; }
  [ -n "$port" ] || port=$(free_port) || return 1
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
  rm -rf "$dir/data" "$dir/log"
  install -d -o postgres -g postgres -m 700 "$dir/data" "$dir/sock" "$dir/log" || return 1
  runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
    tail -20 "$dir/initdb.log" >&2
    return 1
  }
  echo "$port" >"$dir/port"
  echo "${POSTGRES_FSYNC:-off}" >"$dir/fsync"
  _postgres_run "$dir" || return 1
  POSTGRES_DIR=$dir
  export POSTGRES_DIR
  runuser -u postgres -- "$PGBIN/psql" -q -h "$dir/sock" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE vgtest LOGIN CREATEDB PASSWORD 'vgtest-pass'" || return 1
  export VAULTGATE_TEST_DATABASE_URL="postgres://vgtest:vgtest-pass@127.0.0.1:$port/postgres"
  echo "PostgreSQL on 127.0.0.1:$port (data $dir/data, log $dir/log/server.log)"
}

# pg_ctl start of the cluster in DIR on the port and fsync setting postgres_start chose
# (DIR/port, DIR/fsync).
_postgres_run() { # DIR
  local dir=$1 port fsync
  port=$(cat "$dir/port") || return 1
  fsync=$(cat "$dir/fsync" 2>/dev/null || echo off)
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log/server.log" -w -t 30 \
    -o "-p $port -h 127.0.0.1 -k $dir/sock -c fsync=$fsync -c max_connections=400" start >/dev/null || {
    tail -20 "$dir/log/server.log" >&2
    return 1
  }
}

postgres_pause() { # stops the server of POSTGRES_DIR, keeping its data (the database is down)
  local dir=${POSTGRES_DIR:?postgres_pause: no cluster started}
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
}

postgres_resume() { # starts it again on the same port after postgres_pause
  _postgres_run "${POSTGRES_DIR:?postgres_resume: no cluster started}"
}

postgres_stop() {
  local dir=${POSTGRES_DIR:-}
  [ -n "$dir" ] || return 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    local pid
    pid=$(head -1 "$dir/data/postmaster.pid")
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      stop_pid "$pid"
  fi
  rm -rf "$dir/data" "$dir/sock" "$dir/port"
  unset POSTGRES_DIR VAULTGATE_TEST_DATABASE_URL
}
