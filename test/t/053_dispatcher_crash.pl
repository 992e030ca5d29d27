# Crashes in the middle of a run of 10,000 notifications: kill -9 of the
# worker (the postmaster restarts everything), then kill -9 of the
# postmaster.  Every notification is delivered; the only re-sends are
# requests that were in flight, and the peer, which applies each event id
# once, applies all 10,000 exactly once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PayDispatcherTest;

my $total = 10_000;
my $port = start_peer();
my $node = pay_node('crash', q{
pay.dispatcher_concurrency = 64
pay.dispatcher_destination_concurrency = 16
pay.notify_schedule = '100ms,200ms,300ms,400ms,500ms,1s,1s,1s,1s,1s'
pay.breaker_failures = 0
restart_after_crash = on
});
for my $m (1 .. 10)
{
	notify_merchant($node, "k$m", "http://127.0.0.1:$port/slow/30/k$m", "secret-k$m");
}
$node->safe_psql('postgres', q{
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency)
SELECT m.id, 'K-' || i, 100, 'USD' FROM pay.merchants m, generate_series(1, 1000) i WHERE m.code LIKE 'k%';
});
my $applied = sub { my $s = eval { peer_get($port, '/_stats') }; $s ? $s->{applied} : 0 };

# Queue in ten transactions of 1,000 (each commit wakes the worker).
sub enqueue
{
	my (@merchants) = @_;
	for my $m (@merchants)
	{
		$node->safe_psql('postgres', qq{
SELECT count(pay.enqueue_merchant_notification(o.id, 'paid'))
  FROM pay.orders o JOIN pay.merchants m ON m.id = o.merchant_id WHERE m.code = 'k$m'});
	}
}
sub wait_applied
{
	my ($n) = @_;
	my $deadline = time + 60;
	usleep(10_000) while $applied->() < $n && time < $deadline;
	return $applied->();
}
sub wait_up
{
	my $deadline = time + 60;
	while (time < $deadline)
	{
		my ($rc, $out) = $node->psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pay dispatcher'});
		return 1 if $rc == 0 && $out eq '1';
		usleep(100_000);
	}
	return 0;
}

my $t0 = time;
enqueue(1 .. 5);
my $at = wait_applied(1500);
my $pid = dispatcher_pid($node);
kill 9, $pid;
note("kill -9 of the worker ($pid) with $at of 5,000 queued notifications applied");
ok(wait_up(), 'after kill -9 of the worker the server recovers and the worker runs again');
cmp_ok($at, '<', 5000, 'the worker was killed in the middle of the run');
enqueue(6 .. 10);
$at = wait_applied(6500);
$node->kill9;
note("kill -9 of the postmaster with $at of $total notifications applied");
cmp_ok($at, '<', $total, 'the postmaster was killed in the middle of the run');
# Orphaned processes exit when they notice the postmaster is gone.
my $deadline = time + 30;
until ($node->start(fail_ok => 1) || time > $deadline)
{
	$node->{_pid} = undef;    # a failed start read the old pid file
	usleep(200_000);
}
ok(wait_up(), 'after kill -9 of the postmaster the server starts and the worker runs again');

ok(wait_for_sql($node, q{SELECT count(*) FILTER (WHERE state = 'done') = 10000 FROM pay.outbox}, 90),
	'every notification is delivered');
my $elapsed = time - $t0;
my $stats = peer_get($port, '/_stats');
my $expected = $node->safe_psql('postgres', q{SELECT string_agg(idempotency_key, ',' ORDER BY idempotency_key) FROM pay.outbox});
is(join(',', sort keys %{ $stats->{keys} }), $expected, 'the peer received every event id, and no other');
is($stats->{applied}, $total, "the peer applied $total notifications, each once");
my $interrupted = $node->safe_psql('postgres', q{SELECT count(*) FROM pay.outbox_attempts WHERE outcome = 'interrupted'});
note("re-sends: $stats->{duplicates}; in-flight rows taken back after the crashes: $interrupted; $elapsed s");
cmp_ok($stats->{duplicates}, '<=', $interrupted, 'the only re-sends are of requests that were in flight at a crash');
cmp_ok($interrupted, '<=', 2 * 64, 'and at most pay.dispatcher_concurrency were in flight at each crash');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pay.outbox WHERE attempts > 2}), '0',
	'no notification needed more than its interrupted attempt and one more');
is($node->safe_psql('postgres', q{SELECT sum(undelivered) FROM pay.outbox_backlog}), '0', 'the backlog count is zero');
cmp_ok($elapsed, '<', 120, 'the run took under two minutes');
$node->stop('immediate');
done_testing();
