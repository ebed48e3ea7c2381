#!/usr/bin/env bash
# Start a throwaway PostgreSQL of another major version (Debian's postgresql-15 by
# default) as the unprivileged `postgres` user, on a Unix socket only, and print its URL.
# Usage: .ci/second-postgres.sh start DIR [MAJOR] | stop DIR [MAJOR]
set -euo pipefail
action=$1 dir=$2 major=${3:-15}
bin=/usr/lib/postgresql/$major/bin
if [ ! -x "$bin/initdb" ]; then
  echo "installing postgresql-$major from Debian" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$major" >/dev/null
fi
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
case $action in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    run "'$bin/initdb' -D '$dir/data' -A trust -U postgres -E UTF8 >/dev/null"
    run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/log' -w -o \"-c listen_addresses= -k '$dir' -p 55432\" start >/dev/null"
    echo "postgresql://postgres@/postgres?host=$dir&port=55432"
    ;;
  stop)
    run "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop >/dev/null" || true
    ;;
esac
