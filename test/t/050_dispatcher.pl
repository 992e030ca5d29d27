# The dispatcher's basics: the worker (backend_type, restart, signals, DROP
# DATABASE), wake on commit (latency without polling, no CPU when idle),
# merchant notifications for every transition to paid, refunded or failed
# (signed as doc/api.md says, checked here with Perl's own HMAC), the outbox
# bound, and what happens without shared_preload_libraries.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Digest::SHA qw(hmac_sha256_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PayDispatcherTest;

# 1. Without preloading: everything works, nothing delivers, and the status says so.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->append_conf('postgresql.conf', "pay.allow_private_destinations = on\n");
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION pay');
is($plain->safe_psql('postgres', 'SELECT running, preloaded, detail FROM pay.dispatcher'),
	'f|f|pay is not in shared_preload_libraries: nothing delivers the outbox',
	'without preloading the status says delivery is not running');
$plain->safe_psql('postgres', q{
SELECT pay.create_merchant('p1', 'P1', 'http://127.0.0.1:9/ok');
SELECT pay.mark_paid((pay.create_order('p1', 'PO-1', 500, 'USD')).id, 'ptxn1', 500, 'USD');
});
is($plain->safe_psql('postgres', q{SELECT kind || ':' || operation || ':' || state FROM pay.outbox}),
	'merchant_notification:paid:pending', 'without preloading a paid order still queues its notification');
$plain->stop;

# 2. Preloaded: the worker runs and says so.
my $port = start_peer();
my $node = pay_node('main');
my $secret = 'merchant-secret-1';
notify_merchant($node, 'm1', "http://127.0.0.1:$port/ok/m1", $secret);
ok(wait_for_sql($node, q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pay dispatcher'}),
	'the worker shows in pg_stat_activity with backend_type "pay dispatcher"');
my $pid = dispatcher_pid($node);

# 3. Wake on commit: an idle worker delivers within milliseconds of COMMIT.
my @orders = map {
	$node->safe_psql('postgres', "SELECT id FROM pay.create_order('m1', 'L-$_', 1000 + $_, 'USD')")
} 1 .. 5;
sleep 1;    # the worker is asleep on its latch (it sleeps up to 60 s)
my @latencies;
my $session = $node->background_psql('postgres');
for my $id (@orders)
{
	my $wakeups = $node->safe_psql('postgres', 'SELECT wakeups FROM pay.dispatcher');
	my $committed = time;    # before the call: an upper bound of the latency
	$session->query_safe("SELECT pay.mark_paid($id, 'txn-$id', (SELECT amount FROM pay.orders WHERE id = $id), 'USD')");
	my $arrived;
	while (!$arrived && time < $committed + 5)
	{
		($arrived) = map { $_->[0] } grep { ($_->[2] // '') eq "evt_${id}_paid" } @{ peer_get($port, '/_log') };
		usleep(2_000) unless $arrived;
	}
	push @latencies, defined $arrived ? $arrived - $committed : 99;
	cmp_ok($node->safe_psql('postgres', 'SELECT wakeups FROM pay.dispatcher'), '>', $wakeups,
		"order $id: the commit set the worker's latch");
	usleep(200_000);
}
my ($worst) = sort { $b <=> $a } @latencies;
note(sprintf('call-to-arrival latencies (ms): %s', join(' ', map { sprintf '%.1f', $_ * 1000 } @latencies)));
cmp_ok($worst, '<', 0.2, 'each notification arrived well under a second after COMMIT (the idle wait is 60 s)');

# 4. The notification: form fields of doc/api.md, signed with the merchant's api_secret.
my ($entry) = grep { ($_->[2] // '') eq "evt_$orders[0]_paid" } @{ peer_get($port, '/_log') };
my %f = form_fields($entry->[4]);
is(join(',', sort keys %f), 'amount,currency,event_id,id,merchant_order_no,nonce,sign,status,timestamp',
	'the notification carries the fields of doc/api.md');
is("$f{id}|$f{merchant_order_no}|$f{amount}|$f{currency}|$f{status}", "$orders[0]|L-1|1001|USD|paid",
	'the fields describe the order');
is($entry->[3], 'POST', 'the notification is a POST');
is($f{sign}, hmac_sha256_hex(canonical(%f), $secret), 'sign is HMAC-SHA256 of the canonical string under api_secret');
cmp_ok(abs($f{timestamp} - time), '<', 60, 'timestamp is the send time');
like($f{nonce}, qr/^[0-9a-f]{32}$/, 'nonce is 128 random bits in hex');
is($node->safe_psql('postgres', "SELECT state || ':' || attempts || ':' || last_status FROM pay.outbox WHERE idempotency_key = 'evt_$orders[0]_paid'"),
	'done:1:200', 'the row is done after one attempt');
is($node->safe_psql('postgres', "SELECT outcome || ':' || http_status || ':' || (latency_ms > 0) FROM pay.outbox_attempts a JOIN pay.outbox o ON o.id = a.outbox_id WHERE o.idempotency_key = 'evt_$orders[0]_paid'"),
	'done:200:true', 'the attempt is recorded with its status and latency');

# 5. Every transition to paid, refunded or failed queues exactly one, and so
# does every refund (doc/api.md: "and on refunds"); nothing else does.
$node->safe_psql('postgres', q{
SELECT pay.create_merchant('quiet', 'No notify_url');
SELECT pay.mark_paid((pay.create_order('quiet', 'Q-1', 100, 'USD')).id, 'q1', 100, 'USD');
});
my $o1 = $orders[0];
my $w = $node->safe_psql('postgres', "SELECT id FROM pay.create_order('m1', 'W-1', 700, 'USD')");
my $f1 = $node->safe_psql('postgres', "SELECT id FROM pay.create_order('m1', 'F-1', 800, 'USD')");
$node->safe_psql('postgres', qq{
SELECT pay.refund($orders[1], 500);                       -- partial: refund_<id>
SELECT pay.refund($orders[1], 502);                       -- the rest: refund_<id> and refunded
SELECT pay.ship($o1);                                     -- no notification
SELECT pay.pay_with_balance($w, 'wallet:m1');             -- paid from a wallet
UPDATE pay.orders SET status = 'failed', status_cause = 'psp failure' WHERE id = $f1;
SELECT pay.enqueue_merchant_notification($o1, 'paid');    -- the same event again: the same row
});
is($node->safe_psql('postgres', q{SELECT string_agg(regexp_replace(operation, '\d+$', 'N'), ',' ORDER BY operation) FROM pay.outbox WHERE kind = 'merchant_notification'}),
	'failed,paid,paid,paid,paid,paid,paid,refund_N,refund_N,refunded',
	'one notification per transition to paid, refunded or failed and per refund; none for shipping, merchants without notify_url, or a repeated event');
ok(wait_for_sql($node, q{SELECT bool_and(state = 'done') FROM pay.outbox}), 'all of them are delivered');
is($node->safe_psql('postgres', q{SELECT sum(undelivered) FROM pay.outbox_backlog}), '0', 'the backlog count is back to zero');

# 6. An idle worker uses no CPU: no wake-ups and no CPU ticks over 3 s.
sub cpu_ticks { my @s = split ' ', `cat /proc/$_[0]/stat`; return $s[13] + $s[14]; }
my $ticks = cpu_ticks($pid);
my $wakeups = $node->safe_psql('postgres', 'SELECT wakeups FROM pay.dispatcher');
sleep 3;
cmp_ok(cpu_ticks($pid) - $ticks, '<=', 1, 'the idle worker used no CPU time');
is($node->safe_psql('postgres', 'SELECT wakeups FROM pay.dispatcher'), $wakeups, 'and was not woken');

# 7. The outbox is bounded: past pay.outbox_pending_max, queuing fails with PY029.
$session->quit;
my ($rc, $out, $err) = $node->psql('postgres', q{
BEGIN;
SELECT set_config('pay.outbox_pending_max', (SELECT sum(undelivered) + 2 FROM pay.outbox_backlog)::text, true);
SELECT pay.enqueue_merchant_notification(id, 'bound_' || id) FROM pay.orders WHERE merchant_order_no IN ('L-1', 'L-2');
\set VERBOSITY verbose
SELECT pay.enqueue_merchant_notification(id, 'bound_' || id) FROM pay.orders WHERE merchant_order_no = 'L-3';
ROLLBACK;
});
like($err, qr/PY029: the outbox is full: 2 undelivered requests, the limit is 2/, 'queuing past the bound is refused with PY029');
like($err, qr/pay\.outbox_pending_max/, 'the error names the setting to change');

# 8. Signals: SIGHUP reloads, SIGTERM ends the worker and the postmaster starts it again.
$node->safe_psql('postgres', q{ALTER SYSTEM SET pay.notify_schedule = '1s,2s'; SELECT pg_reload_conf()});
usleep(300_000);
is(dispatcher_pid($node), $pid, 'the worker survives a reload');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET pay.notify_schedule = '4m,soon'});
like($err, qr/invalid value for parameter "pay.notify_schedule".*\n.*comma-separated list of waits/,
	'a bad schedule is refused, saying what a schedule looks like');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET pay.notify_schedule; SELECT pg_reload_conf()});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(wait_for_sql($node, qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pay dispatcher' AND pid <> $pid}, 15),
	'after SIGTERM the postmaster starts the worker again');
my $o6 = $node->safe_psql('postgres', "SELECT id FROM pay.create_order('m1', 'R-1', 900, 'USD')");
$node->safe_psql('postgres', "SELECT pay.mark_paid($o6, 'txn-r1', 900, 'USD')");
ok(wait_for_sql($node, qq{SELECT state = 'done' FROM pay.outbox WHERE idempotency_key = 'evt_${o6}_paid'}, 10),
	'the new worker delivers');

# 9. DROP DATABASE does not wait for the worker (it serves procsignal barriers).
$node->safe_psql('postgres', 'CREATE DATABASE scratch');
my $t0 = time;
($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE scratch', timeout => 30);
is($rc, 0, 'DROP DATABASE of another database succeeds while the worker runs');
cmp_ok(time - $t0, '<', 10, 'promptly');

is($node->safe_psql('postgres', 'SELECT running, detail FROM pay.dispatcher'), 't|delivering', 'the status says delivering');
is($node->safe_psql('postgres', q{SELECT sum(undelivered) = (SELECT count(*) FROM pay.outbox WHERE state IN ('pending', 'in_flight')) FROM pay.outbox_backlog}),
	't', 'the backlog count matches the outbox');
$node->stop;
done_testing();
