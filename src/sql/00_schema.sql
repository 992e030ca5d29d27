-- pay install script, assembled by the Makefile from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION pay" to load this file. \quit

-- Roles are cluster-wide, so they may already exist (a second database, a
-- reinstall); create only what is missing.  They cannot log in: grant them to
-- the login roles of the application, the proxy and the DBAs.  What each
-- may do: 90_privileges.sql and README.md, "Roles".
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['pay_app', 'pay_callback', 'pay_admin', 'pay_readonly'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;

REVOKE ALL ON SCHEMA pay FROM PUBLIC;
GRANT USAGE ON SCHEMA pay TO pay_app, pay_callback, pay_admin, pay_readonly;
COMMENT ON SCHEMA pay IS 'payment ledger: orders, state machine, idempotency keys, double-entry ledger';
