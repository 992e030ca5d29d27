# Outcomes, retries, dead letters, circuit breakers and isolation between
# destinations, against a loopback peer that answers slowly, with 500s and
# 429s, resets, hangs, oversized and malformed answers.  Tiny schedules.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PayDispatcherTest;

my $port = start_peer();
my $node = pay_node('retries', q{
pay.notify_schedule = '300ms,600ms,900ms'
pay.psp_retry_base = '100ms'
pay.psp_attempts_max = 4
pay.retry_jitter = 0
pay.breaker_failures = 0
pay.http_timeout = '1500ms'
pay.http_connect_timeout = '500ms'
pay.http_response_max = 4096
});
my $url = "http://127.0.0.1:$port";

# One merchant per behaviour, one paid order each: one notification each.
my %modes = (ok => 'ok', e500 => 'status/500', e429 => 'status/429', e408 => 'status/408',
	e404 => 'status/404', e301 => 'status/301', reset => 'reset', hang => 'hang',
	malformed => 'malformed', big => 'big/10000', nosuccess => 'nosuccess', flaky => 'flaky/2',
	sw => 'switch/sw');
my %order;
for my $m (sort keys %modes)
{
	notify_merchant($node, $m, "$url/$modes{$m}/$m", "secret-$m");
	$order{$m} = $node->safe_psql('postgres', "SELECT id FROM pay.create_order('$m', 'O-$m', 1000, 'USD')");
}
peer_post($port, '/_mode/sw?status/503');
# A generic PSP that fails with 503: the quadratic schedule.
$node->safe_psql('postgres', qq{SELECT pay.create_gateway('gen503', 'generic', '$url/status/503/psp')});
my $psp_order = $node->safe_psql('postgres', "SELECT id FROM pay.create_order('ok', 'O-psp', 1000, 'USD', gateway => 'gen503')");
# A generic PSP that answers 404: a PSP's 4xx is permanent.
$node->safe_psql('postgres', qq{SELECT pay.create_gateway('gen404', 'generic', '$url/status/404/psp')});
my $psp404 = $node->safe_psql('postgres', "SELECT id FROM pay.create_order('ok', 'O-psp404', 1000, 'USD', gateway => 'gen404')");
$node->safe_psql('postgres', qq{
SELECT pay.mark_paid(id, 'txn-' || id, amount, currency) FROM pay.orders WHERE gateway IS NULL;
SELECT pay.enqueue_psp_request($psp_order, 'create_payment');
SELECT pay.enqueue_psp_request($psp404, 'create_payment');
});
ok(wait_for_sql($node, q{SELECT bool_and(state IN ('done', 'dead')) FROM pay.outbox}, 60), 'every row ends done or dead');

# The state, attempts and last error of each merchant's notification.
my %row = map { my ($d, @r) = split /\|/; ($d => [@r]) } split /\n/, $node->safe_psql('postgres', q{
SELECT split_part(destination, ':', 2), state, attempts, coalesce(last_status, 0), coalesce(last_error, '')
  FROM pay.outbox WHERE kind = 'merchant_notification'});
is("@{$row{ok}}[0..2]", 'done 1 200', '200 "success": done at once');
is("@{$row{flaky}}[0..2]", 'done 3 200', 'two 500s then success: done at the third attempt');
# doc/api.md: a merchant that does not acknowledge is retried on the schedule,
# whatever it answered (a 4xx or a redirect too: redirects are not followed)
like($row{e404}[3], qr/^HTTP 404 \(attempt 4 of 4: no more\)$/, 'a merchant\'s 404 is retried until the schedule ends');
like($row{e301}[3], qr/^HTTP 301 \(attempt 4 of 4: no more\)$/, 'a merchant\'s redirect is not followed, and retried');
for my $m (qw(e404 e301 e500 e429 e408 reset hang malformed big nosuccess))
{
	is("@{$row{$m}}[0..1]", 'dead 4', "$modes{$m}: retried on the schedule, dead after 4 attempts");
}
like($row{e500}[3], qr/^HTTP 500 \(attempt 4 of 4: no more\)$/, '500: the error says the schedule ended');
like($row{e429}[3], qr/^HTTP 429/, '429 is retried');
like($row{reset}[3], qr/(Recv failure|Connection reset|Server returned nothing)/i, 'a reset is a transport error');
like($row{hang}[3], qr/Timeout was reached/, 'a hung peer times out (pay.http_timeout)');
like($row{malformed}[3], qr/(Weird server reply|Unsupported|HTTP\/0\.9|Received HTTP)/i, 'a malformed answer is a transport error');
like($row{big}[3], qr/larger than pay.http_response_max \(4096 bytes\)/, 'an answer over the cap fails');
like($row{nosuccess}[3], qr/answered 200 without "success"/, 'a 200 without "success" is not an acknowledgement');

# The waits follow the schedule: 300, 600, 900 ms between attempts (no jitter).
sub gaps
{
	my ($path) = @_;
	my @t = map { $_->[0] } grep { $_->[1] =~ m{^\Q$path\E} } @{ peer_get($port, '/_log') };
	return map { $t[$_] - $t[$_ - 1] } 1 .. $#t;
}
my @g = gaps('/status/500/e500');
is(scalar @g, 3, 'four attempts reached the peer');
for my $i (0 .. 2)
{
	my $want = (0.3, 0.6, 0.9)[$i];
	ok($g[$i] >= $want - 0.01 && $g[$i] < $want + 0.4, sprintf('notification retry %d waited %.3f s (schedule: %.1f s)', $i + 1, $g[$i], $want));
}
@g = gaps('/status/503/psp');
is(scalar @g, 3, 'the PSP request was tried pay.psp_attempts_max = 4 times');
for my $i (0 .. 2)
{
	my $want = (0, 0.1, 0.4)[$i];
	ok($g[$i] >= $want - 0.01 && $g[$i] < $want + 0.4, sprintf('PSP retry %d waited %.3f s ((n-1)^2 x 100 ms = %.1f s)', $i + 1, $g[$i], $want));
}
is($node->safe_psql('postgres', q{SELECT string_agg(outcome || coalesce(':' || http_status, ''), ',' ORDER BY a.id)
  FROM pay.outbox_attempts a JOIN pay.outbox o ON o.id = a.outbox_id WHERE o.destination = 'merchant:e500'}),
	'retry:500,retry:500,retry:500,dead:500', 'every attempt is recorded');

# Dead letters and re-driving.
is($node->safe_psql('postgres', "SELECT state || ' ' || attempts || ' ' || last_status || ' ' || last_error FROM pay.outbox WHERE order_id = $psp404 AND kind = 'psp_request'"),
	'dead 1 404 HTTP 404 (permanent)', 'a PSP\'s 404 is permanent: dead after one attempt');
is($node->safe_psql('postgres', "SELECT status || ' ' || failure_reason FROM pay.orders WHERE id = $psp404"),
	'failed HTTP 404: failure', 'the refusal of its create failed the order, with what the PSP said');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pay.outbox_dead_letters}), '13', 'the dead-letter view lists the dead rows');
my $sw = $node->safe_psql('postgres', q{SELECT id FROM pay.outbox WHERE destination = 'merchant:sw'});
is($node->safe_psql('postgres', "SELECT state FROM pay.outbox WHERE id = $sw"), 'dead', 'the switchable merchant failed for good');
peer_post($port, '/_mode/sw?ok');
is($node->safe_psql('postgres', "SELECT state || ':' || attempts FROM pay.redrive($sw)"), 'pending:0', 'pay.redrive queues it again');
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE id = $sw", 10), 'and it is delivered');
is($node->safe_psql('postgres', "SELECT count(*) FROM pay.outbox_attempts WHERE outbox_id = $sw"), '5', 'the attempts before the re-drive are kept');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT pay.redrive($sw)");
like($err, qr/outbox row $sw is done; only a dead \(or pending\) row can be re-driven/, 'a done row cannot be re-driven');
is($node->safe_psql('postgres', q{SELECT pay.redrive_dead('merchant:e500')}), '1', 'pay.redrive_dead re-drives by destination');

# 2. Circuit breakers: 3 consecutive failures open the circuit for 1 s; then one probe.
$node->safe_psql('postgres', q{
ALTER SYSTEM SET pay.breaker_failures = 3;
ALTER SYSTEM SET pay.breaker_cooldown = '1500ms';
ALTER SYSTEM SET pay.psp_attempts_max = 50;
ALTER SYSTEM SET pay.psp_retry_base = '10ms';
SELECT pg_reload_conf();
});
sleep 1;
peer_post($port, '/_mode/gw?status/500');
$node->safe_psql('postgres', qq{SELECT pay.create_gateway('gwb', 'generic', '$url/switch/gw')});
is($node->safe_psql('postgres', q{SELECT pay.gateway_available('gwb')}), 't', 'a gateway without failures is available');
# each create_order queues its create request (enqueuing it again returns that row)
my @psp = map { $node->safe_psql('postgres', "SELECT id FROM pay.create_order('ok', 'B-$_', 1000, 'USD', gateway => 'gwb')") } 1 .. 4;
$node->safe_psql('postgres', join ';', map { "SELECT pay.enqueue_psp_request($_, 'create_payment')" } @psp);
ok(wait_for_sql($node, q{SELECT state = 'open' FROM pay.circuits WHERE destination = 'gateway:gwb'}, 10), 'the circuit opens');
is($node->safe_psql('postgres', q{SELECT pay.gateway_available('gwb')}), 'f', 'routing sees the gateway unavailable');
my $count = sub { scalar grep { $_->[1] =~ m{^/switch/gw} } @{ peer_get($port, '/_log') } };
my $n_open = $count->();
cmp_ok($n_open, '>=', 3, 'the circuit opened after 3 failed requests (and those already on the wire)');
cmp_ok($node->safe_psql('postgres', q{SELECT consecutive_failures FROM pay.circuit_breakers WHERE destination = 'gateway:gwb'}),
	'>=', 3, 'the circuit counts the consecutive failures');
usleep(700_000);
is($count->(), $n_open, 'nothing is sent while the circuit is open');
my $deadline = time + 5;
usleep(20_000) while $count->() == $n_open && time < $deadline;
usleep(300_000);
is($count->(), $n_open + 1, 'after the cool-down exactly one probe goes out');
is($node->safe_psql('postgres', q{SELECT state || ':' || (open_until > now()) FROM pay.circuits WHERE destination = 'gateway:gwb'}),
	'open:true', 'the failed probe opens the circuit for another cool-down');
peer_post($port, '/_mode/gw?slowjson/1000');
$deadline = time + 5;
usleep(20_000) while $count->() == $n_open + 1 && time < $deadline;
is($node->safe_psql('postgres', q{SELECT state FROM pay.circuits WHERE destination = 'gateway:gwb'}), 'half_open',
	'while the next probe is on the wire the circuit is half-open');
usleep(500_000);
is($count->(), $n_open + 2, 'and nothing else goes out');
ok(wait_for_sql($node, q{SELECT state = 'closed' FROM pay.circuits WHERE destination = 'gateway:gwb'}, 10),
	'a successful probe closes the circuit');
ok(wait_for_sql($node, q{SELECT bool_and(state = 'done') FROM pay.outbox WHERE destination = 'gateway:gwb'}, 10)
	|| diag($node->safe_psql('postgres', q{SELECT id, state, attempts, next_attempt_at, clock_timestamp(), last_error FROM pay.outbox WHERE destination = 'gateway:gwb'})),
	'and the waiting requests go out');
is($node->safe_psql('postgres', q{SELECT pay.gateway_available('gwb')}), 't', 'the gateway is available again');

# 3. A hung destination does not hold up the others.
$node->safe_psql('postgres', q{
ALTER SYSTEM SET pay.http_timeout = '20s';
ALTER SYSTEM SET pay.breaker_failures = 0;
ALTER SYSTEM SET pay.dispatcher_concurrency = 8;
ALTER SYSTEM SET pay.dispatcher_destination_concurrency = 4;
SELECT pg_reload_conf();
});
sleep 1;
$node->safe_psql('postgres', q{
SELECT pay.mark_paid((pay.create_order('hang', 'H-' || i, 1000, 'USD')).id, 'th' || i, 1000, 'USD') FROM generate_series(1, 30) i;
});
ok(wait_for_sql($node, q{SELECT count(*) = 4 FROM pay.outbox WHERE destination = 'merchant:hang' AND state = 'in_flight'}, 5),
	'the hung merchant holds only pay.dispatcher_destination_concurrency = 4 slots');
my $t0 = time;
$node->safe_psql('postgres', q{SELECT pay.mark_paid((pay.create_order('ok', 'FAST-1', 1000, 'USD')).id, 'fast1', 1000, 'USD')});
ok(wait_for_sql($node, q{SELECT state = 'done' FROM pay.outbox o JOIN pay.orders d ON d.id = o.order_id WHERE d.merchant_order_no = 'FAST-1'}, 5),
	'another merchant is served meanwhile');
cmp_ok(time - $t0, '<', 1, 'within a second');
my $pid = dispatcher_pid($node);
sub cpu_ticks { my @s = split ' ', `cat /proc/$_[0]/stat`; return $s[13] + $s[14]; }
my $ticks = cpu_ticks($pid);
sleep 2;
cmp_ok(cpu_ticks($pid) - $ticks, '<', 20, 'while the hung merchant waits for free slots the worker sleeps (under 10% CPU)');

is($node->safe_psql('postgres', q{SELECT sum(undelivered) = (SELECT count(*) FROM pay.outbox WHERE state IN ('pending', 'in_flight')) FROM pay.outbox_backlog}),
	't', 'the backlog count matches the outbox');
$node->stop('immediate');
done_testing();
