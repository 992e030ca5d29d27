# pay's periodic jobs on the real pg_cron: schedule_jobs creates the named
# jobs, pg_cron runs one and its effect and its cron.job_run_details row
# are visible, schedule_jobs again updates rather than duplicates, and
# unschedule_jobs removes them.  pay itself installs without pg_cron.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('jobs');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pay,pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

# pay does not need pg_cron; its scheduling functions say what is missing
$node->safe_psql('postgres', 'CREATE EXTENSION pay');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT pay.schedule_jobs()');
isnt($rc, 0, 'schedule_jobs without pg_cron fails');
like($err, qr/pg_cron is not installed in database postgres/, '... saying so');
($rc, $out, $err) = $node->psql('postgres', 'SELECT pay.unschedule_jobs()');
like($err, qr/pg_cron is not installed/, 'unschedule_jobs too');

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$node->safe_psql('postgres', 'CREATE ROLE dba LOGIN IN ROLE pay_admin');
my $names = $node->safe_psql('postgres', 'SELECT string_agg(n, \',\' ORDER BY n) FROM pay.schedule_jobs() n',
	extra_params => ['-U', 'dba']);
is($names, 'pay:expire_authorizations,pay:expire_orders,pay:janitor,pay:purge_api_nonces,pay:purge_callback_nonces,pay:purge_callbacks,'
	. 'pay:purge_idempotency_keys,pay:purge_outbox', 'pay_admin schedules the jobs');
is($node->safe_psql('postgres',
		q{SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'pay:expire_orders'}),
	q{* * * * * SELECT pay.run_job('expire_orders')}, 'expire_orders runs every minute');
$node->safe_psql('postgres', 'SELECT pay.schedule_jobs()');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname LIKE 'pay:%'}), '8',
	'scheduling again updates the jobs, no duplicates');

# a Stripe gateway gets its daily statement fetch, at pay.statement_fetch_hour;
# disabled, its job goes at the next scheduling
$node->safe_psql('postgres', q{SELECT pay.create_gateway('tap_stripe', 'stripe', 'https://psp.example')});
$node->safe_psql('postgres', q{SET pay.statement_fetch_hour = 4; SELECT pay.schedule_jobs()});
is($node->safe_psql('postgres',
		q{SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'pay:fetch_statement:tap_stripe'}),
	q{15 4 * * * SELECT pay.run_job('fetch_statement:tap_stripe')}, 'the statement fetch job, daily at 04:15 UTC');
$node->safe_psql('postgres', q{UPDATE pay.gateways SET enabled = false WHERE name = 'tap_stripe'; SELECT pay.schedule_jobs()});
is($node->safe_psql('postgres', q{SELECT string_agg(jobname, ',') FROM cron.job WHERE jobname LIKE 'pay:fetch%'}), '',
	'a disabled gateway has no fetch job');

# an order that is due: the next minute's run of pay:expire_orders cancels it
$node->safe_psql('postgres', q{
SELECT pay.create_merchant('jobs_shop', 'Jobs Shop');
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, expires_at)
  SELECT id, 'J-1', 100, 'USD', now() - interval '1 second' FROM pay.merchants WHERE code = 'jobs_shop';
});
ok($node->poll_query_until('postgres', q{
SELECT EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                WHERE j.jobname = 'pay:expire_orders' AND d.status = 'succeeded')}),
	'pg_cron ran pay:expire_orders');
is($node->safe_psql('postgres', q{SELECT status FROM pay.orders WHERE merchant_order_no = 'J-1'}),
	'cancelled', 'the due order expired');
like($node->safe_psql('postgres', q{
SELECT d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)
 WHERE j.jobname = 'pay:expire_orders' AND d.status = 'succeeded' ORDER BY d.runid LIMIT 1}),
	qr/^SELECT 1$/, 'its run is recorded in cron.job_run_details');
is($node->safe_psql('postgres', q{SELECT cause FROM pay.order_events e JOIN pay.orders o ON o.id = e.order_id
 WHERE o.merchant_order_no = 'J-1'}), 'expired', 'the event says why');

# an order pending at a gateway for 10 minutes: pay:janitor queues a query about it
is($node->safe_psql('postgres',
		q{SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'pay:janitor'}),
	q{* * * * * SELECT pay.run_job('janitor')}, 'the janitor runs every minute');
$node->safe_psql('postgres', q{
SELECT pay.create_gateway('tap_generic', 'generic', 'https://psp.example');
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, gateway, expires_at, created_at)
  SELECT id, 'J-2', 100, 'USD', 'tap_generic', now() + interval '1 hour', now() - interval '10 minutes'
    FROM pay.merchants WHERE code = 'jobs_shop';
});
ok($node->poll_query_until('postgres', q{
SELECT EXISTS (SELECT 1 FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
                WHERE o.merchant_order_no = 'J-2' AND x.operation = 'query' AND x.idempotency_key LIKE '%janitor%')}),
	'pg_cron ran pay:janitor, which queued a query of the pending order');

is($node->safe_psql('postgres', 'SELECT pay.unschedule_jobs()', extra_params => ['-U', 'dba']), '8',
	'unschedule_jobs removes the eight');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname LIKE 'pay:%'}), '0', 'none left');
is($node->safe_psql('postgres', 'SELECT pay.unschedule_jobs()'), '0', 'removing again removes nothing');

$node->stop;
done_testing();
