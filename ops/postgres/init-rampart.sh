#!/bin/sh
# Postgres image init script (ops/docker-compose.yml mounts it into
# /docker-entrypoint-initdb.d/; it runs once, on an empty data directory, as the superuser).
# The same bootstrap as the dev stack's (src/rampart/devstack/postgres.py,
# bootstrap_database): a migration role that may create roles but is no superuser and
# cannot bypass RLS, owning the `rampart` database and its public schema, allowed to read
# every session's state for the connection metrics. `rampart migrate` (run by `rampart up`)
# creates the runtime role app_rw and sets its password from DATABASE_URL.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set=password="$MIGRATION_PASSWORD" <<'SQL'
CREATE ROLE migration_admin WITH LOGIN NOSUPERUSER CREATEROLE NOBYPASSRLS PASSWORD :'password';
CREATE DATABASE rampart OWNER migration_admin;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname rampart <<'SQL'
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA extensions;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO migration_admin;
GRANT pg_read_all_stats TO migration_admin;
SQL
