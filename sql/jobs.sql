-- Periodic jobs: pay installs and runs its jobs by hand without pg_cron;
-- scheduling them needs pg_cron (test/t/070_jobs.pl runs them on it).
SELECT count(*) AS pg_cron_installed FROM pg_extension WHERE extname = 'pg_cron';
\set VERBOSITY default
SELECT pay.schedule_jobs();
SELECT pay.unschedule_jobs();
\set VERBOSITY terse
SELECT pay.run_job('no_such_job');
SELECT pay.run_job(NULL);
-- (the fetch jobs of gateways other tests made are left out)
SELECT job, schedule FROM pay._jobs() WHERE job NOT LIKE 'fetch_statement:%';
-- a due order is expired by the job
SELECT pay.create_merchant('jobs_shop', 'Jobs Shop') > 0 AS merchant;
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, expires_at)
  SELECT id, 'J-1', 100, 'USD', now() - interval '1 second' FROM pay.merchants WHERE code = 'jobs_shop';
SELECT pay.run_job('expire_orders');
SELECT status FROM pay.orders WHERE merchant_order_no = 'J-1';
SELECT pay.run_job('expire_orders');
SELECT pay.run_job(j.job) LIKE j.job || ': %' AS runs FROM pay._jobs() j WHERE j.job NOT LIKE 'fetch_statement:%';
-- a daily statement fetch for each enabled Stripe, WeChat Pay and Alipay gateway, at pay.statement_fetch_hour
SELECT pay.create_gateway('jobs_stripe', 'stripe', 'https://psp.example') > 0 AS gateway;
SELECT pay.create_gateway('jobs_wechat', 'wechatpay', 'https://psp.example') > 0 AS wechat;
SELECT pay.create_gateway('jobs_alipay', 'alipay', 'https://psp.example') > 0 AS alipay;
SELECT pay.create_gateway('jobs_generic', 'generic', 'https://psp.example') > 0 AS not_fetched;
SET pay.statement_fetch_hour = '5';
SELECT job, schedule FROM pay._jobs() WHERE job LIKE 'fetch_statement:jobs%';
SET pay.statement_fetch_hour = 24;
RESET pay.statement_fetch_hour;
SELECT regexp_replace(pay.run_job('fetch_statement:jobs_stripe'), '[0-9]+$', 'N') AS run;
SELECT operation, params->>'day' = to_char((now() AT TIME ZONE 'UTC')::date - 1, 'YYYY-MM-DD') AS yesterday
  FROM pay.outbox WHERE destination = 'gateway:jobs_stripe';
SELECT pay.run_job('fetch_statement:jobs_generic');
