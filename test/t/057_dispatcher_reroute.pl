# Re-routing: a create_payment request that fails for good at one gateway
# (a 4xx refusal, dead after its retries, or held by an open circuit before
# it was sent) moves its pending order, once, to the next available gateway
# when its routing rule says so; the merchant still sees one order.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PayDispatcherTest;

my $port = start_peer();
my $url = "http://127.0.0.1:$port";
my $node = pay_node('reroute', q{
pay.psp_retry_base = '100ms'
pay.psp_attempts_max = 2
pay.retry_jitter = 0
pay.breaker_failures = 2
pay.breaker_cooldown = '10min'
pay.http_timeout = '2s'
});

$node->safe_psql('postgres', qq{
SELECT pay.create_merchant('rm', 'Reroute Shop');
SELECT pay.create_gateway('g402', 'generic', '$url/status/402/a');
SELECT pay.create_gateway('g402b', 'generic', '$url/status/402/b');
SELECT pay.create_gateway('g402c', 'generic', '$url/status/402/c');
SELECT pay.create_gateway('g503', 'generic', '$url/status/503/d');
SELECT pay.create_gateway('gok', 'generic', '$url/json/e');
-- USD: refused at g402, re-routed to gok
SELECT pay.set_routing_rule_reroute(pay.add_routing_rule('g402', 'rm', 'USD', 10), true);
SELECT pay.add_routing_rule('gok', 'rm', 'USD', 20);
-- EUR: refused at g402b, re-routed to g402c, refused there too: not again
SELECT pay.set_routing_rule_reroute(pay.add_routing_rule('g402b', 'rm', 'EUR', 10), true);
SELECT pay.set_routing_rule_reroute(pay.add_routing_rule('g402c', 'rm', 'EUR', 20), true);
SELECT pay.add_routing_rule('gok', 'rm', 'EUR', 30);
-- JPY: the rule does not re-route (the default)
SELECT pay.add_routing_rule('g402', 'rm', 'JPY', 10);
SELECT pay.add_routing_rule('gok', 'rm', 'JPY', 20);
-- GBP: g503 fails until its circuit opens
SELECT pay.set_routing_rule_reroute(pay.add_routing_rule('g503', 'rm', 'GBP', 10), true);
SELECT pay.add_routing_rule('gok', 'rm', 'GBP', 20);
});

# One transaction: every order is routed before any of their create
# requests (queued by create_order) is sent.  GBP2 is made while g503's
# circuit is closed, so routed there; its request is held back (not due)
# until the circuit is open.
my %id = map { split /\|/ } split /\n/, $node->safe_psql('postgres', q{
BEGIN;
CREATE TEMP TABLE made AS
  SELECT c AS label, (pay.create_order('rm', 'R-' || c, 1000, left(c, 3))).id
    FROM unnest(ARRAY['USD', 'EUR', 'JPY', 'GBP', 'GBP2']) WITH ORDINALITY u(c, n) ORDER BY n;
UPDATE pay.outbox SET next_attempt_at = now() + interval '1 day' WHERE order_id = (SELECT id FROM made WHERE label = 'GBP2');
SELECT label, id FROM made;
COMMIT;
});
# each order's first create request (queued by create_order) went to its first route
is($node->safe_psql('postgres', q{
SELECT string_agg(substr(destination, length('gateway:') + 1), ' ' ORDER BY order_id) FROM pay.outbox
 WHERE idempotency_key = 'psp_' || order_id || '_create_payment'}),
	'g402 g402b g402 g503 g503', 'first routes');
# enqueuing them again returns the rows create_order queued
is($node->safe_psql('postgres', qq{
SELECT bool_and(pay.enqueue_psp_request(o.id, 'create_payment') = x.id) FROM pay.orders o
  JOIN pay.outbox x ON x.idempotency_key = 'psp_' || o.id || '_create_payment' WHERE o.id <> $id{GBP2}}), 't',
	'enqueue_psp_request returns the queued create requests');

ok(wait_for_sql($node, qq{
SELECT count(*) = 4 FROM pay.outbox WHERE state = 'done'
   AND idempotency_key IN ('psp_$id{USD}_create_payment_rerouted', 'psp_$id{GBP}_create_payment_rerouted')
    OR state = 'dead' AND idempotency_key IN ('psp_$id{EUR}_create_payment_rerouted', 'psp_$id{JPY}_create_payment')}, 60),
	'the requests settle');

# USD: one order, now at gok by the second rule; the refused request is dead and says where it went
is($node->safe_psql('postgres', qq{
SELECT o.status || ' ' || o.gateway || ' ' || (r.priority)::text FROM pay.orders o
  JOIN pay.routing_rules r ON r.id = o.routing_rule_id WHERE o.id = $id{USD}}),
	'pending gok 20', 'a 4xx refusal: the pending order moved to the next gateway, its rule recorded');
is($node->safe_psql('postgres', qq{
SELECT string_agg(destination || ' ' || state || ' ' || coalesce(last_status, 0), ', ' ORDER BY id)
  FROM pay.outbox WHERE order_id = $id{USD}}),
	'gateway:g402 dead 402, gateway:gok done 200', 'the first request dead, the second delivered');
like($node->safe_psql('postgres', "SELECT last_error FROM pay.outbox WHERE idempotency_key = 'psp_$id{USD}_create_payment'"),
	qr/re-routed to gateway:gok/, 'the dead request says where the order went');
is($node->safe_psql('postgres', "SELECT count(*) FROM pay.orders WHERE merchant_order_no = 'R-USD'"), 1,
	'the merchant sees one order');
is($node->safe_psql('postgres', "SELECT psp_txn_id FROM pay.orders WHERE id = $id{USD}"),
	"txn_psp_$id{USD}_create_payment_rerouted", "the new gateway's answer applied");

# EUR: moved once, then refused again: stays at the second gateway
is($node->safe_psql('postgres', "SELECT gateway FROM pay.orders WHERE id = $id{EUR}"), 'g402c', 'moved once');
is($node->safe_psql('postgres', qq{
SELECT string_agg(state, ' ' ORDER BY id) FROM pay.outbox WHERE order_id = $id{EUR}}), 'dead dead',
	'the second refusal does not move it again');

# JPY: the rule does not re-route
is($node->safe_psql('postgres', "SELECT gateway FROM pay.orders WHERE id = $id{JPY}"), 'g402', 'reroute off: stays');
is($node->safe_psql('postgres', "SELECT count(*) FROM pay.outbox WHERE order_id = $id{JPY}"), 1, 'and no second request');

# GBP: dead after its retries (which opened g503's circuit): moved
is($node->safe_psql('postgres', "SELECT gateway FROM pay.orders WHERE id = $id{GBP}"), 'gok', 'dead after retries: moved');
ok(wait_for_sql($node, "SELECT state = 'open' FROM pay.circuit_breakers WHERE destination = 'gateway:g503'", 10),
	"g503's circuit is open");

# GBP2: its request due behind the open circuit, never sent: moved before it is
$node->safe_psql('postgres', "UPDATE pay.outbox SET next_attempt_at = now() WHERE order_id = $id{GBP2}");
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE idempotency_key = 'psp_$id{GBP2}_create_payment_rerouted'", 30),
	'a request held by an open circuit: re-routed and delivered');
is($node->safe_psql('postgres', qq{
SELECT state || ' ' || attempts || ' ' || last_error FROM pay.outbox WHERE idempotency_key = 'psp_$id{GBP2}_create_payment'}),
	'dead 0 re-routed to gateway:gok', 'the held request was never sent, and is dead');
is(scalar(grep { $_->[1] =~ m{^/status/503/d} } @{ peer_get($port, '/_log') }), 2,
	'g503 saw only the first order\'s two attempts');

# A request its order has left is not re-driven
my ($rc, $out, $err) = $node->psql('postgres', "SELECT pay.redrive(id) FROM pay.outbox WHERE idempotency_key = 'psp_$id{USD}_create_payment'");
like($err, qr/re-routed to another gateway/, 'redrive refuses the request the order left');
is($node->safe_psql('postgres', "SELECT pay.redrive_dead('gateway:g402')"), 1, 'redrive_dead skips it (re-drives JPY only)');

$node->stop;
done_testing();
