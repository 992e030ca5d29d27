-- Backups and the extension's lifecycle.
--
-- pg_dump keeps the rows of an extension's tables only when the install
-- script marks them (pg_extension_config_dump); everything else is part of
-- the extension and comes back from CREATE EXTENSION pay.  Every table that
-- holds data is marked, with its identity sequence (or ids would restart
-- at 1).  Not marked: pay.outbox_backlog, whose counts the outbox triggers
-- rebuild while the outbox rows are restored (same total, other slots), and
-- pay.seed_rows below.
--
-- A restore COPYs the rows into the tables CREATE EXTENSION made, with every
-- trigger live: the triggers tell a superuser's COPY from other writes
-- (src/restore.c) and let a restored order keep its status; every other
-- rule applies to restored rows as to new ones, and all of them guard again
-- once the restore is over.
--
-- The tables the install script seeds (currencies, order statuses and
-- transitions) are dumped only with the rows a user added or changed:
-- CREATE EXTENSION seeds the rest again.  A changed seeded row comes back
-- over the seed (pay._restore_seeded_row).

-- The seeded rows as the install script wrote them, each table's row as text.
CREATE TABLE pay.seed_rows (
    table_name  text NOT NULL,
    row_text    text NOT NULL,
    PRIMARY KEY (table_name, row_text)
);
COMMENT ON TABLE pay.seed_rows IS
  'the rows the install script seeded, as text: pg_dump keeps only the rows of pay.currencies, pay.order_statuses and pay.order_transitions that are not among them';
INSERT INTO pay.seed_rows
  SELECT 'currencies', c::text FROM pay.currencies c
  UNION ALL SELECT 'order_statuses', s::text FROM pay.order_statuses s
  UNION ALL SELECT 'order_transitions', t::text FROM pay.order_transitions t;

CREATE FUNCTION pay._restoring() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_restoring' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pay._restoring() IS
  'true while a superuser''s COPY FROM writes rows: a restore (src/restore.c)';

-- A restored row of a seeded table whose key CREATE EXTENSION already
-- seeded replaces the seeded row's values instead of failing on the key.
CREATE FUNCTION pay._restore_seeded_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT pay._restoring() THEN
    RETURN NEW;
  END IF;
  CASE TG_TABLE_NAME
    WHEN 'currencies' THEN
      UPDATE pay.currencies c SET numeric_code = NEW.numeric_code, name = NEW.name
       WHERE c.code = NEW.code;
    WHEN 'order_statuses' THEN
      UPDATE pay.order_statuses s SET terminal = NEW.terminal WHERE s.status = NEW.status;
    WHEN 'order_transitions' THEN
      UPDATE pay.order_transitions t SET description = NEW.description
       WHERE t.from_status = NEW.from_status AND t.to_status = NEW.to_status;
  END CASE;
  RETURN CASE WHEN FOUND THEN NULL ELSE NEW END;
END $$;
CREATE TRIGGER currencies_restore BEFORE INSERT ON pay.currencies
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
CREATE TRIGGER order_statuses_restore BEFORE INSERT ON pay.order_statuses
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
CREATE TRIGGER order_transitions_restore BEFORE INSERT ON pay.order_transitions
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
ALTER TABLE pay.currencies ENABLE ALWAYS TRIGGER currencies_restore;
ALTER TABLE pay.order_statuses ENABLE ALWAYS TRIGGER order_statuses_restore;
ALTER TABLE pay.order_transitions ENABLE ALWAYS TRIGGER order_transitions_restore;

-- Mark every table of schema pay that holds data, and every sequence.  A
-- new table is covered without a new line here; the upgrade scripts run
-- this function again.
CREATE FUNCTION pay._mark_dumped_tables() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel, c.relname, c.relkind
      FROM pg_class c
     WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind IN ('r', 'S')
       AND c.relname NOT IN ('outbox_backlog', 'seed_rows')
     ORDER BY c.relname
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(r.rel,
      CASE WHEN r.relname IN ('currencies', 'order_statuses', 'order_transitions')
           THEN format('WHERE NOT EXISTS (SELECT FROM pay.seed_rows s WHERE s.table_name = %L AND s.row_text = %I::text)',
                       r.relname, r.relname)
           ELSE '' END);
  END LOOP;
END $$;
COMMENT ON FUNCTION pay._mark_dumped_tables() IS
  'marks every table and sequence of schema pay for pg_dump (the seeded tables: only rows users added or changed); run by the install and upgrade scripts';
SELECT pay._mark_dumped_tables();

-- DROP EXTENSION pay refuses while the ledger holds data (src/drop_guard.c).
CREATE FUNCTION pay._drop_guard() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pay_drop_guard' LANGUAGE C;
CREATE EVENT TRIGGER pay_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION pay._drop_guard();
COMMENT ON FUNCTION pay._drop_guard() IS
  'refuses DROP EXTENSION pay and DROP SCHEMA pay while pay.orders or pay.postings has rows, unless pay.confirm_drop_ledger is on';

REVOKE ALL ON pay.seed_rows FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pay._restoring(), pay._restore_seeded_row(), pay._mark_dumped_tables(),
    pay._drop_guard() FROM PUBLIC;
