# The dispatcher's limits per destination, with the default settings: the
# concurrency limit grows past its start against a slow peer and backs off
# on 503 and 429; Retry-After (seconds or an HTTP date) stops a destination
# until then; a gateway's max_rate caps its requests per second.  Counts and
# orderings seen at the peer, with wide margins (no timing that a loaded
# machine could break: a slow machine only makes requests later).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use List::Util qw(max);
use PayDispatcherTest;

my $port = start_peer();
my $node = pay_node('capacity', q{
pay.notify_schedule = '200ms'
pay.psp_retry_base = '100ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
pay.http_timeout = '20s'
});
my $url = "http://127.0.0.1:$port";

# The peer's log entries for a path: [time, path, key, method, body, traceparent, in_flight, answered]
sub requests_to
{
	my ($prefix) = @_;
	return grep { $_->[1] =~ m{^\Q$prefix\E} } @{ peer_get($port, '/_log') };
}

# n paid orders of a merchant: one notification each, queued in one transaction.
sub notifications
{
	my ($merchant, $n) = @_;
	$node->safe_psql('postgres', qq{
SELECT pay.mark_paid((pay.create_order('$merchant', '$merchant-' || i, 1000, 'USD')).id, '$merchant-t' || i, 1000, 'USD')
  FROM generate_series(1, $n) i});
}

# 1. A merchant that answers in 300 ms: the limit grows past the 16 it starts at.
notify_merchant($node, 'slow', "$url/slow/300/slow", 'secret-slow');
notifications('slow', 600);
ok(wait_for_sql($node, q{SELECT bool_and(state = 'done') FROM pay.outbox WHERE destination = 'merchant:slow'}, 180),
	'600 notifications to a merchant that answers in 300 ms are delivered');
my @slow = requests_to('/slow/300/slow');
is(scalar @slow, 600, 'each once');
my $slow_max = max(map { $_->[6] } @slow);
cmp_ok($slow_max, '>', 24, "the merchant had up to $slow_max requests at once: the limit grew past 16");
cmp_ok($slow_max, '<=', 512, 'and stayed within pay.dispatcher_destination_concurrency');

# 2. Merchants that answer 503 or 429 (no Retry-After) after 300 ms: the
# first wave is the starting limit, 16; the failures halve it (once per
# round trip), so later requests see at most 8 at once.
for my $m ([ 'busy', 503 ], [ 'limited', 429 ])
{
	my ($name, $status) = @$m;
	notify_merchant($node, $name, "$url/slowstatus/300/$status/$name", "secret-$name");
	notifications($name, 60);
}
ok(wait_for_sql($node, q{SELECT bool_and(state = 'dead') FROM pay.outbox WHERE destination IN ('merchant:busy', 'merchant:limited')}, 180),
	'the refused notifications end dead after their schedule');
for my $m ([ 'busy', 503 ], [ 'limited', 429 ])
{
	my ($name, $status) = @$m;
	my @r = requests_to("/slowstatus/300/$status/$name");
	is(scalar @r, 120, "$status: 60 notifications tried twice each");
	cmp_ok(max(map { $_->[6] } @r), '<=', 16, "$status: never more than the starting limit at once");
	my $later = max(map { $_->[6] } @r[32 .. $#r]);
	cmp_ok($later, '<=', 8, "$status: after the first answers, at most 8 at once (saw $later): the limit backed off");
}

# 3. Retry-After: nothing goes to the destination before the time it names,
# although the schedule would retry after 200 ms.
notify_merchant($node, 'ra', "$url/throttle/1/429/3/ra", 'secret-ra');
notify_merchant($node, 'rad', "$url/throttle/1/503/date5/rad", 'secret-rad');
notifications('ra', 1);
notifications('rad', 1);
ok(wait_for_sql($node, q{SELECT bool_and(state = 'done') FROM pay.outbox WHERE destination IN ('merchant:ra', 'merchant:rad')}, 60),
	'the throttled notifications are delivered in the end');
for my $m ([ 'ra', '/throttle/1/429/3/ra', 3, 'Retry-After: 3 (seconds)' ],
	[ 'rad', '/throttle/1/503/date5/rad', 4, 'Retry-After: an HTTP date 4-5 s ahead' ])
{
	my ($name, $path, $wait, $what) = @$m;
	my @r = requests_to($path);
	is(scalar @r, 2, "$what: refused once, then delivered");
	my $gap = $r[1][0] - $r[0][7];
	cmp_ok($gap, '>=', $wait - 0.1, sprintf('%s: the retry came %.2f s after the answer, not before', $what, $gap));
}

# 4. A gateway with max_rate 5: its 30 requests go out at no more than 5 in
# any second (a bucket of one token; +1 for the edges of the window).
$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('rated', 'generic', '$url/json/rated', '{"max_rate": 5}');
SELECT pay.enqueue_psp_request((pay.create_order('slow', 'R-' || i, 1000, 'USD', gateway => 'rated')).id, 'create_payment')
  FROM generate_series(1, 30) i;
});
ok(wait_for_sql($node, q{SELECT bool_and(state IN ('done', 'dead')) AND count(*) = 30 FROM pay.outbox WHERE destination = 'gateway:rated'}, 60),
	'the rated gateway\'s 30 requests are sent');
my @t = map { $_->[0] } requests_to('/json/rated');
is(scalar @t, 30, 'each once');
my $busiest = 0;
for my $i (0 .. $#t)
{
	my $n = grep { $_ >= $t[$i] && $_ < $t[$i] + 1 } @t;
	$busiest = $n if $n > $busiest;
}
cmp_ok($busiest, '<=', 6, "at most 6 requests in any second (saw $busiest) at max_rate 5");
cmp_ok($t[-1] - $t[0], '>=', 4.5, sprintf('the 30 requests took %.1f s (29 intervals of 0.2 s)', $t[-1] - $t[0]));

done_testing();
