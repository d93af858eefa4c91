#!/usr/bin/env bash
# Install (from Debian's packages) and start PostgreSQL on 127.0.0.1:5432, then print the URL
# the tests use. Safe to run again.
set -euo pipefail
# Only the URL goes to stdout (the caller captures it with $(...)); everything else goes to
# stderr. The setup runs with fd 3 closed: a PostgreSQL server it starts would otherwise inherit
# the capture pipe and keep it open, and the caller's $(...) would wait for it forever.
exec 3>&1 1>&2
setup() {
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null
  fi
  pg_ctlcluster "$version" main start 2>/dev/null || true
  for _ in $(seq 1 60); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 0.5
  done
  pg_isready -h 127.0.0.1 -p 5432 -q
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
}
setup 3>&-
echo "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres" >&3
