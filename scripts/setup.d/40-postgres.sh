# shellcheck shell=bash
# Private PostgreSQL servers for the store/postgres tests.
#
# Sourced by scripts/test.sh. Installs Debian's `postgresql` package when no
# server binaries are found, then creates two throwaway clusters in temporary
# directories owned by a non-root user (PostgreSQL refuses to run as root) and
# starts each on a free loopback port with fsync off:
#
#   TWILIOGUARD_TEST_POSTGRES_DSN      superuser DSN of database twilioguard_test
#                                      on the shared server, which stays up; tests
#                                      create their own databases through it
#   TWILIOGUARD_TEST_POSTGRES_CTL_DSN  the same for a second server, which tests
#                                      may stop and start (outage tests) without
#                                      disturbing the tests that use the first
#   TWILIOGUARD_TEST_POSTGRES_CTL      a command running pg_ctl on that second
#                                      server; append the action, e.g.
#                                      "stop -m fast" or "start -w"
#
# Stop-and-remove commands go into CLEANUP. When TWILIOGUARD_TEST_POSTGRES_DSN
# is already set, nothing is installed or started. Without CI=true a failure
# only warns (the tests then skip); with CI=true it fails the run.

_tg_pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
    echo "$d"
  fi
}

# _tg_pg_free_port prints a loopback TCP port nobody listens on.
_tg_pg_free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# _tg_pg_cluster BINDIR NAME creates and starts a cluster, registers its
# removal in CLEANUP and sets _tg_pg_dsn and _tg_pg_ctl.
_tg_pg_cluster() {
  local bindir=$1 name=$2
  # The server runs as the invoking user, or as a system user when that is root.
  local run=()
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    if ! id "$user" >/dev/null 2>&1; then
      user=twilioguard-pg
      id "$user" >/dev/null 2>&1 ||
        useradd --system --no-create-home --shell /usr/sbin/nologin "$user" || return 1
    fi
    run=(runuser -u "$user" --)
  fi

  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/twilioguard-pg-$name.XXXXXX") || return 1
  chmod 755 "$dir"
  if [ "${#run[@]}" -gt 0 ]; then
    chown "${run[2]}" "$dir" || return 1
  fi
  "${run[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1; }

  # Everything pg_ctl needs is in the data directory's configuration, so the
  # control command only names the directory and the log file.
  local ctl="$dir/pgctl"
  cat >"$ctl" <<EOF
#!/bin/sh
# Runs pg_ctl on a private test cluster; pass the action, e.g. "stop -m fast".
exec ${run[*]} "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" "\$@"
EOF
  chmod 755 "$ctl"

  local port attempt started=
  for attempt in 1 2 3 4 5; do
    port=$(_tg_pg_free_port) || return 1
    cat >"$dir/data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    if "$ctl" start -w -t 60 >/dev/null 2>&1; then
      started=1
      break
    fi
    echo "postgres: start on port $port failed (attempt $attempt)" >&2
  done
  if [ -z "$started" ]; then
    tail -n 20 "$dir/server.log" >&2 2>/dev/null
    rm -rf "$dir"
    return 1
  fi
  CLEANUP+=("'$ctl' stop -m immediate >/dev/null 2>&1; rm -rf '$dir'")

  "${run[@]}" "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c 'CREATE DATABASE twilioguard_test' >/dev/null || return 1
  _tg_pg_dsn="postgres://postgres@127.0.0.1:$port/twilioguard_test?sslmode=disable"
  _tg_pg_ctl=$ctl
  echo "postgres: $name server on 127.0.0.1:$port, data in $dir"
}

_tg_pg_setup() {
  if [ -n "${TWILIOGUARD_TEST_POSTGRES_DSN:-}" ]; then
    echo "postgres: using TWILIOGUARD_TEST_POSTGRES_DSN from the environment"
    return 0
  fi
  local bindir
  bindir=$(_tg_pg_bindir)
  if [ -z "$bindir" ]; then
    apt_install postgres postgresql || return 1
    bindir=$(_tg_pg_bindir)
    [ -n "$bindir" ] || { echo "postgres: no server binaries after install" >&2; return 1; }
  fi
  echo "postgres: $("$bindir/postgres" --version)"
  local _tg_pg_dsn _tg_pg_ctl
  _tg_pg_cluster "$bindir" shared || return 1
  export TWILIOGUARD_TEST_POSTGRES_DSN=$_tg_pg_dsn
  _tg_pg_cluster "$bindir" ctl || return 1
  export TWILIOGUARD_TEST_POSTGRES_CTL_DSN=$_tg_pg_dsn
  export TWILIOGUARD_TEST_POSTGRES_CTL=$_tg_pg_ctl
}

if ! _tg_pg_setup; then
  if [ "${CI:-}" = true ]; then
    echo "postgres: setup failed" >&2
    unset -f _tg_pg_bindir _tg_pg_free_port _tg_pg_cluster _tg_pg_setup
    return 1
  fi
  echo "postgres: not available; the store/postgres tests will skip" \
    "(install with: apt-get install postgresql)" >&2
fi
unset -f _tg_pg_bindir _tg_pg_free_port _tg_pg_cluster _tg_pg_setup
