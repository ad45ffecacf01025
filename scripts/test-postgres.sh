#!/usr/bin/env bash
# Start a local PostgreSQL server for the test suite and print its SQLAlchemy URL.
# Installs Debian's postgresql package when it is missing (needs root, as on CI).
set -euo pipefail
log() { echo "test-postgres: $*" >&2; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^${version} main$"; then
  log "creating cluster ${version}/main"
  pg_createcluster "${version}" main >&2
fi
if ! pg_lsclusters -h | awk -v v="${version}" '$1==v && $2=="main" {print $4}' | grep -q online; then
  log "starting cluster ${version}/main"
  pg_ctlcluster "${version}" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="${version}" '$1==v && $2=="main" {print $3}')

for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q -p ${port}" && break
  sleep 1
done
su postgres -c "psql -q -p ${port} -tc \"SELECT 1 FROM pg_roles WHERE rolname='creditops'\"" | grep -q 1 \
  || su postgres -c "psql -q -p ${port} -c \"CREATE ROLE creditops LOGIN PASSWORD 'creditops'\"" >&2
# CREATEDB: the topology test gives MLflow and creditops databases of their own, as compose does.
# CREATEROLE: the grants test makes a service role that may only insert into the decision log.
su postgres -c "psql -q -p ${port} -c \"ALTER ROLE creditops CREATEDB CREATEROLE\"" >&2
su postgres -c "psql -q -p ${port} -tc \"SELECT 1 FROM pg_database WHERE datname='creditops_test'\"" | grep -q 1 \
  || su postgres -c "createdb -p ${port} -O creditops creditops_test" >&2
echo "postgresql+psycopg://creditops:creditops@127.0.0.1:${port}/creditops_test"
