-- depline's database on a PostgreSQL server (15 or later): an owner role that holds the schema and runs
-- the migrations, and a runtime role the line services log in as, with only what they need: read and
-- write rows, use the sequences. The runtime role cannot create, alter or drop anything, and cannot
-- change the schema revision.
--
-- Run as a PostgreSQL superuser; it is idempotent, so run it again after every `depline db upgrade`
-- (that is what takes the writes on the Alembic revision table back from the runtime role):
--
--   sudo -u postgres psql -v ON_ERROR_STOP=1 \
--        -v owner_password="$(cat /etc/depline/credentials/db-owner)" \
--        -v runtime_password="$(cat /etc/depline/credentials/db-runtime)" \
--        -f /opt/depline/deploy/postgresql/roles.sql
--
-- Names: database `depline`, roles `depline_owner` and `depline_runtime` (many lines share the database;
-- each line's rows carry its line name). Change them here and in the URLs if the site needs others.

\set ON_ERROR_STOP on

SELECT format('CREATE ROLE depline_owner LOGIN PASSWORD %L', :'owner_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'depline_owner') \gexec
SELECT format('CREATE ROLE depline_runtime LOGIN PASSWORD %L', :'runtime_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'depline_runtime') \gexec
-- neither role may do more than its grants: no superuser, no new roles or databases, no replication
ALTER ROLE depline_owner NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE depline_runtime NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 50;

SELECT 'CREATE DATABASE depline OWNER depline_owner ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'depline') \gexec

REVOKE ALL ON DATABASE depline FROM PUBLIC;
GRANT CONNECT ON DATABASE depline TO depline_runtime;

\connect depline

-- the historian's tables live in `public`, owned by the owner role; nobody else creates objects there
ALTER SCHEMA public OWNER TO depline_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO depline_runtime;

-- tables and sequences the migrations create from now on: rows only, for the runtime role
ALTER DEFAULT PRIVILEGES FOR ROLE depline_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO depline_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE depline_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO depline_runtime;

-- and those that exist already (a re-run after `depline db upgrade`)
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO depline_runtime;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO depline_runtime;

-- the schema revision is the owner's business: the service only reads it (and refuses to start on a
-- revision it does not write)
DO $$
BEGIN
    IF to_regclass('public.alembic_version') IS NOT NULL THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.alembic_version FROM depline_runtime;
    END IF;
END
$$;
