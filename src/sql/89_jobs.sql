-- Periodic jobs on pg_cron.
--
-- pay does not depend on pg_cron: CREATE EXTENSION pay works without it,
-- and nothing here names the cron schema outside dynamic SQL.
-- pay.schedule_jobs() creates or updates the named jobs (names begin with
-- "pay:") in the database pg_cron runs in (cron.database_name); it refuses
-- with 55000 when pg_cron is not installed there.
--
-- Jobs of gateways that are gone or disabled are removed when jobs are
-- scheduled again.  Every job is one call of pay.run_job(name), which takes a transaction-
-- level advisory lock for the job and skips the run when another holds it:
-- two runs at once (a slow run overlapping the next tick, a DBA running
-- the job by hand) never do the same work twice.  The jobs themselves work
-- in bounded batches (expire_orders, the janitor and the purges).

-- The jobs and when they run (pg_cron's five-field schedules, UTC): the
-- fixed ones, and a daily statement fetch per enabled gateway that pay can
-- fetch statements from (89_statement_fetch.sql), at the hour of the setting
-- pay.statement_fetch_hour (src/jobs_settings.c: 0-23, default 3; read when
-- jobs are scheduled; 3 where pay's library is not loaded yet).
CREATE FUNCTION pay._jobs() RETURNS TABLE (job text, schedule text)
LANGUAGE sql STABLE AS $$
  SELECT v.job, v.schedule FROM (VALUES
      (1, 'expire_orders', '* * * * *'),
      (2, 'janitor', '* * * * *'),
      (3, 'purge_callback_nonces', '*/5 * * * *'),
      (4, 'purge_api_nonces', '*/5 * * * *'),
      (5, 'purge_idempotency_keys', '*/5 * * * *'),
      (6, 'purge_outbox', '*/5 * * * *'),
      (7, 'purge_callbacks', '*/5 * * * *'),
      (8, 'expire_authorizations', '* * * * *')) v(n, job, schedule)
  UNION ALL
  SELECT 'fetch_statement:' || g.name,
         format('15 %s * * *', coalesce(current_setting('pay.statement_fetch_hour', true), '3')::integer)
    FROM pay.gateways g WHERE g.enabled AND g.kind = ANY (pay._provider_kinds('statements'))
$$;

CREATE FUNCTION pay.run_job(job text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rows bigint;
BEGIN
  IF job IS NULL OR NOT EXISTS (SELECT 1 FROM pay._jobs() j WHERE j.job = run_job.job) THEN
    RAISE EXCEPTION 'job: unknown job "%"', job USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('pay.run_job'), hashtext(job)) THEN
    RETURN job || ': skipped, already running';
  END IF;
  CASE job
    WHEN 'expire_orders' THEN v_rows := pay.expire_orders();
    -- PSP queries about orders, refunds and requests whose outcome is unknown
    WHEN 'janitor' THEN v_rows := pay.run_janitor();
    WHEN 'expire_authorizations' THEN v_rows := pay.expire_authorizations();
    WHEN 'purge_callback_nonces' THEN v_rows := pay.purge_callback_nonces();
    WHEN 'purge_api_nonces' THEN v_rows := pay.purge_api_nonces();
    WHEN 'purge_idempotency_keys' THEN v_rows := pay.purge_idempotency_keys();
    WHEN 'purge_outbox' THEN v_rows := pay.purge_outbox();
    -- callbacks that were not accepted; accepted ones are kept with the ledger
    WHEN 'purge_callbacks' THEN v_rows := pay.purge_callbacks(interval '30 days', 10000);
    -- yesterday's statement (UTC), imported and reconciled when it arrives
    ELSE
      RETURN format('%s: outbox row %s', job, pay.fetch_statement(substr(job, length('fetch_statement:') + 1)));
  END CASE;
  RETURN format('%s: %s', job, v_rows);
END $$;
COMMENT ON FUNCTION pay.run_job(text) IS
  'runs one of pay''s periodic jobs (expire_orders, expire_authorizations, janitor, purge_callback_nonces, purge_api_nonces, purge_idempotency_keys, purge_outbox, purge_callbacks, fetch_statement:<gateway>) unless a run of it is in progress; what the pg_cron jobs call';

CREATE FUNCTION pay._require_pg_cron() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and CREATE EXTENSION pg_cron.';
  END IF;
END $$;

CREATE FUNCTION pay.schedule_jobs() RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j record;
BEGIN
  PERFORM pay._require_pg_cron();
  -- a job this installation no longer has (a gateway's, gone) is removed
  PERFORM pay._unschedule(ARRAY(SELECT 'pay:' || x.job FROM pay._jobs() x));
  FOR j IN SELECT * FROM pay._jobs() LOOP
    -- cron.schedule with a name creates the job or updates the one of that name
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'pay:' || j.job, j.schedule, format('SELECT pay.run_job(%L)', j.job);
    RETURN NEXT 'pay:' || j.job;
  END LOOP;
END $$;
COMMENT ON FUNCTION pay.schedule_jobs() IS
  'creates or updates pay''s pg_cron jobs (names beginning with "pay:"): expire orders and the janitor every minute, the purges every 5 minutes, each Stripe and WeChat Pay gateway''s statement daily at pay.statement_fetch_hour (UTC, default 3); 55000 when pg_cron is not installed here';

-- Removes pay's jobs except those named in p_keep; how many it removed.
CREATE FUNCTION pay._unschedule(p_keep text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  n integer := 0;
BEGIN
  FOR v_id IN EXECUTE 'SELECT jobid FROM cron.job WHERE jobname LIKE ''pay:%'' AND NOT (jobname = ANY ($1)) ORDER BY jobid'
      USING p_keep LOOP
    EXECUTE 'SELECT cron.unschedule($1)' USING v_id;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

CREATE FUNCTION pay.unschedule_jobs() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pay._require_pg_cron();
  RETURN pay._unschedule('{}');
END $$;
COMMENT ON FUNCTION pay.unschedule_jobs() IS
  'removes every pg_cron job of pay (names beginning with "pay:"); returns how many; 55000 when pg_cron is not installed here';

GRANT EXECUTE ON FUNCTION pay.run_job(text), pay.schedule_jobs(), pay.unschedule_jobs() TO pay_admin;
