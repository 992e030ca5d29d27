-- Periodic jobs: pay installs and runs its jobs by hand without pg_cron;
-- scheduling them needs pg_cron (test/t/070_jobs.pl runs them on it).
SELECT count(*) AS pg_cron_installed FROM pg_extension WHERE extname = 'pg_cron';
\set VERBOSITY default
SELECT pay.schedule_jobs();
SELECT pay.unschedule_jobs();
\set VERBOSITY terse
SELECT pay.run_job('no_such_job');
SELECT pay.run_job(NULL);
SELECT job, schedule FROM pay._jobs();
-- a due order is expired by the job
SELECT pay.create_merchant('jobs_shop', 'Jobs Shop') > 0 AS merchant;
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, expires_at)
  SELECT id, 'J-1', 100, 'USD', now() - interval '1 second' FROM pay.merchants WHERE code = 'jobs_shop';
SELECT pay.run_job('expire_orders');
SELECT status FROM pay.orders WHERE merchant_order_no = 'J-1';
SELECT pay.run_job('expire_orders');
SELECT pay.run_job(j.job) LIKE j.job || ': %' AS runs FROM pay._jobs() j;
