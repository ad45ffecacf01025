#!/bin/sh
# First start of the compose PostgreSQL: one database for MLflow's tracking and registry,
# one for creditops (decision log, outcomes, alerts, audit, jobs), owned by the same user.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE DATABASE mlflow OWNER "$POSTGRES_USER";
CREATE DATABASE creditops OWNER "$POSTGRES_USER";
SQL
