# pay's generic scheme end to end, over real HTTP: a gateway whose base_url
# is the fake PSP's /generic.  The dispatcher sends create_payment, refund,
# query, query_refund and close there; the fake answers as a PSP speaking the
# scheme and, when the buyer pays, notifies pay-proxy with the signed
# generic callback (the fake's outbox).  A refund's answer confirms it (a
# retry after a lost answer refunds nothing more), and the PSP's later
# report of it books nothing twice.  A callback under the wrong key is
# recorded and refused; a payment whose callback was lost and a refund
# answered "pending" are found by the janitor's queries; an unpaid order
# that expires is closed at the PSP.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Cwd qw(abs_path);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PayDispatcherTest;

my $top = abs_path("$FindBin::Bin/../..");
my $json = JSON::PP->new->canonical;
my $cfg = $json->decode(slurp_file("$top/test/fake_psp/config.json"));

# --- the fake PSP, pay, and pay-proxy in front of it ---------------------------------------
my $psp = start_fake_psp();
my $fake = $psp->{handle};
my $url = $psp->{url};
sub control { return $psp->{control}->(@_) }

my $node = pay_node('generic', q{
pay.psp_retry_base = '50ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
});
my $pay_proxy = start_pay_proxy($node);
my $proxy = $pay_proxy->{handle};
my $proxy_url = $pay_proxy->{url};

$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('gn', 'generic', '$url/generic', '{"auth": "bearer"}');
SELECT pay.set_secret('gateway:gn', 'api_key', '$cfg->{generic}{api_key}');
SELECT pay.set_secret('gateway:gn', 'webhook_secret', '$cfg->{generic}{webhook_secret}');
SELECT pay.create_merchant('acme', 'ACME', '$url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
});
# the account's notify URL: what happens at the PSP comes to pay-proxy
control('POST', '/control/outbox', { provider => 'generic', target => $proxy_url, gateway => 'gn',
	delay_ms => 0, retry_ms => [100, 200, 400] });

sub psql { $node->safe_psql('postgres', $_[0]) }
sub quiet
{
	ok(wait_for_sql($node, q{SELECT NOT EXISTS (SELECT 1 FROM pay.outbox
	                          WHERE kind = 'psp_request' AND state IN ('pending', 'in_flight'))}, 30), $_[0]);
}
sub notified
{
	is(control('GET', '/control/outbox/wait?timeout_s=20')->{idle}, JSON::PP::true, $_[0]);
}
sub order { psql("SELECT id FROM pay.create_order('acme', '$_[0]', $_[1], 'USD', gateway => 'gn')") }
sub payment { return control('GET', '/control/state')->{generic}{payments}{ $_[0] } }
sub status { psql("SELECT status || ' ' || coalesce(psp_txn_id, '-') FROM pay.orders WHERE id = $_[0]") }
sub booked { psql("SELECT count(*) FROM pay.postings WHERE order_id = $_[0]") }
sub sent { psql("SELECT state || ' ' || last_status FROM pay.outbox WHERE order_id = $_[0] AND operation = '$_[1]' ORDER BY id DESC LIMIT 1") }
sub last_outcome
{
	psql("SELECT event_type || ': ' || outcome FROM pay.callbacks WHERE order_id = $_[0] AND verdict = 'accepted' ORDER BY id DESC LIMIT 1");
}
# what the fake received at /generic/<op> for the order (the last one)
sub received
{
	my ($op, $id) = @_;
	my @r = grep { $json->decode($_->{body})->{order_id} eq "$id" }
		@{ control('GET', "/control/requests?path=/generic/$op")->{requests} };
	return $r[-1];
}

# --- create, the buyer pays, the PSP's callback pays the order ------------------------------
my $a = order('A', 5000);
quiet('A: the create request is answered');
is(sent($a, 'create_payment'), 'done 200', 'A: the fake took create_payment');
my $req = received('create_payment', $a);
is($req->{headers}{Authorization}, "Bearer $cfg->{generic}{api_key}", 'A: sent with the Bearer api_key');
my $body = $json->decode($req->{body});
is("$body->{amount} $body->{currency}", '5000 USD', 'A: the request names the amount and currency');
is($req->{headers}{'Idempotency-Key'}, $body->{idempotency_key}, 'A: the idempotency key in header and body');
my $pa = payment($a);
is($pa->{status}, 'pending', 'A: a pending payment at the PSP');
is(status($a), "pending $pa->{psp_txn_id}", 'A: the answer\'s psp_txn_id is the order\'s');
is(psql("SELECT next_action->>'url' FROM pay.orders WHERE id = $a"), "$url/generic/checkout/$pa->{psp_txn_id}",
	'A: the answer\'s next_action is where the buyer goes');

my $paid = control('POST', '/control/generic/pay', { order_id => "$a" });
ok($paid->{notified}, 'A: the buyer pays at the PSP, which notifies');
notified('A: the paid callback reached pay-proxy');
is(status($a), "paid $pa->{psp_txn_id}", 'A: the order is paid');
is(last_outcome($a), 'paid: paid', 'A: by the generic paid callback') or diag(last_outcome($a));
is(booked($a), '1', 'A: the payment is booked once');
is(psql("SELECT pay.balance('merchant:acme:USD')"), '5000', 'A: the merchant holds 5000');

# the same event again (a PSP's redelivery): nothing more is booked
my $again = control('POST', '/control/send', { provider => 'generic', gateway => 'gn', order_id => "$a",
	amount => 5000, currency => 'USD', target => $proxy_url, variant => 'redeliver' });
is(join(',', map { "$_->{status} $_->{body}" } @{ $again->{results} }), '200 success,200 success',
	'A: a redelivered paid callback is acknowledged');
is(booked($a), '1', 'A: ... and booked no second time');

# --- a refund: sent, answered, confirmed ---------------------------------------------------
# (its first answer lost after the PSP made it: the retry under the same key refunds nothing more)
control('POST', '/control/faults', { path => '/generic/refund', mode => 'status', status => 500,
	after => JSON::PP::true, count => 1 });
my $r = psql("SELECT pay.refund($a, 1200, 'part of it')");
quiet('A: the refund request is answered');
is(sent($a, 'refund'), 'done 200', 'A: the fake took the refund');
my $key = psql("SELECT idempotency_key FROM pay.outbox WHERE order_id = $a AND operation = 'refund'");
my $eff = control('GET', '/control/effects')->{keys}{"generic:$key"};
is("$eff->{requests} $eff->{effects}", '2 1', 'A: sent twice under one key (the first answer lost), refunded once');
$body = $json->decode(received('refund', $a)->{body});
is("$body->{refund_id} $body->{refund_amount}", "$r 1200", 'A: the request names the refund and its amount');
my $pr = (grep { $_->{refund_id} eq $r } values %{ control('GET', '/control/state')->{generic}{refunds} })[0];
is(psql("SELECT psp_status || ' ' || psp_refund_id FROM pay.refunds WHERE id = $r"), "succeeded $pr->{psp_refund_id}",
	'A: the refund is confirmed with the PSP\'s refund id');
is(payment($a)->{refunded}, 1200, 'A: the PSP refunded 1200, not the order\'s amount');
is(psql("SELECT pay.balance('merchant:acme:USD')"), '3800', 'A: the ledger matches the PSP: 3800 left');
is(psql("SELECT status || ' ' || refunded_amount FROM pay.orders WHERE id = $a"), 'paid 1200', 'A: still paid, 1200 refunded');

# the PSP reports that refund afterwards (a "refunded" callback naming its refund id): nothing booked twice
my $told = control('POST', '/control/send', { provider => 'generic', gateway => 'gn', order_id => "$a", amount => 5000,
	currency => 'USD', target => $proxy_url, event => 'refunded', refund_amount => 1200, refund_id => $pr->{psp_refund_id} });
is($told->{results}[0]{status}, 200, 'A: the PSP\'s report of that refund is acknowledged');
is(last_outcome($a), "refunded: refund $r sent by pay, already booked", 'A: ... as pay\'s own refund');
is(psql("SELECT pay.balance('merchant:acme:USD') || ' ' || refunded_amount FROM pay.orders WHERE id = $a"), '3800 1200',
	'A: ... booked no second time');

# the PSP reports a refund before pay has read its answer to the request (the answer is slow):
# the report is of pay's own refund, waiting for that answer, and is not booked again
control('POST', '/control/faults', { path => '/generic/refund', mode => 'slow', delay_ms => 3000, count => 1 });
my $r2 = psql("SELECT pay.refund($a, 700, 'more of it')");
ok(wait_for_sql($node, qq{SELECT EXISTS (SELECT 1 FROM pay.outbox WHERE order_id = $a AND operation = 'refund'
                             AND params->>'refund_id' = '$r2' AND state = 'in_flight')}, 30),
	'A: the second refund request is on its way');
my $early = control('POST', '/control/send', { provider => 'generic', gateway => 'gn', order_id => "$a", amount => 5000,
	currency => 'USD', target => $proxy_url, event => 'refunded', refund_amount => 700, refund_id => 'RPRE700' });
is($early->{results}[0]{status}, 200, 'A: the PSP\'s early report of it is acknowledged');
is(last_outcome($a), "refunded: refund $r2 sent by pay, already booked (reported before its answer)",
	'A: ... as pay\'s own refund, still waiting for its answer');
quiet('A: the slow answer arrives');
is(psql("SELECT psp_status || ' ' || psp_refund_id FROM pay.refunds WHERE id = $r2"), 'succeeded RPRE700',
	'A: the refund is confirmed, under the id the report named');
is(psql("SELECT pay.balance('merchant:acme:USD') || ' ' || refunded_amount FROM pay.orders WHERE id = $a"), '3100 1900',
	'A: 700 booked once');

# --- a callback under the wrong key: recorded, refused, nothing moves ---------------------
my $bad = control('POST', '/control/send', { provider => 'generic', gateway => 'gn', order_id => "$a",
	amount => 5000, currency => 'USD', target => $proxy_url, event => 'closed', variant => 'wrong_key' });
my $res = $bad->{results}[0];
isnt($res->{status}, 200, 'a wrongly signed callback is refused');
like($res->{body}, qr/^fail: /, '... with the scheme\'s "fail: <reason>"');
is(psql(q{SELECT verdict || ' ' || reason_code FROM pay.callbacks WHERE gateway = 'gn' ORDER BY id DESC LIMIT 1}),
	'rejected PY010', '... and recorded as rejected') or diag(psql(q{SELECT verdict, reason_code, reason FROM pay.callbacks WHERE gateway = 'gn' ORDER BY id DESC LIMIT 1}));
is(psql("SELECT status FROM pay.orders WHERE id = $a"), 'paid', '... and the order is untouched');

# --- a payment whose callback is lost: the janitor's query finds it -----------------------
my $b = order('B', 3000);
quiet('B: the create request is answered');
ok(!control('POST', '/control/generic/pay', { order_id => "$b", notify => JSON::PP::false })->{notified},
	'B: paid at the PSP, no callback');
is(psql("SELECT status FROM pay.orders WHERE id = $b"), 'pending', 'B: pay has not heard of it');
sleep(1.1);
is(psql(q{SELECT pay.run_janitor('1 second')}), '1', 'B: the janitor queues a query');
quiet('B: the query is answered');
is(sent($b, 'query'), 'done 200', 'B: the fake answered the query');
is(psql("SELECT o.status || ' ' || regexp_replace(e.cause, '[0-9]+', 'N') FROM pay.orders o
           JOIN pay.order_events e ON e.order_id = o.id WHERE o.id = $b ORDER BY e.id DESC LIMIT 1"),
	'paid query N', 'B: the query\'s answer paid the order');
is(booked($b), '1', 'B: booked once');

# --- a refund answered "pending": the janitor's query_refund learns its outcome ------------
control('POST', '/control/generic/settings', { refund_status => 'pending' });
my $rb = psql("SELECT pay.refund($b, 3000)");
quiet('B: the refund request is answered');
is(psql("SELECT psp_status FROM pay.refunds WHERE id = $rb"), 'requested', 'B: pending at the PSP: still requested');
my $prb = (grep { $_->{refund_id} eq $rb } values %{ control('GET', '/control/state')->{generic}{refunds} })[0];
control('POST', '/control/generic/settle_refund', { psp_refund_id => $prb->{psp_refund_id}, status => 'succeeded' });
sleep(1.1);
is(psql(q{SELECT pay.run_janitor('1 second')}), '1', 'B: the janitor queues a query_refund');
quiet('B: the query_refund is answered');
is(sent($b, 'query_refund'), 'done 200', 'B: the fake answered the query_refund');
is(psql("SELECT psp_status || ' ' || psp_refund_id FROM pay.refunds WHERE id = $rb"), "succeeded $prb->{psp_refund_id}",
	'B: the refund is confirmed');
is(psql(q{SELECT pay.run_janitor('1 second')}), '0', 'nothing is left unknown');
control('POST', '/control/generic/settings', { refund_status => 'succeeded' });

# --- an unpaid order that expires: closed at the PSP ------------------------------------
my $c = order('C', 700);
quiet('C: the create request is answered');
psql("UPDATE pay.orders SET expires_at = now() - interval '1 second' WHERE id = $c");
is(psql('SELECT pay.expire_orders()'), '1', 'C: the order expires');
quiet('C: the close request is answered');
is(sent($c, 'close'), 'done 200', 'C: the fake took the close');
is(payment($c)->{status}, 'closed', 'C: the payment is closed at the PSP');
is(psql("SELECT status FROM pay.orders WHERE id = $c"), 'cancelled', 'C: cancelled here');
is(booked($c), '0', 'C: nothing booked');

# --- the books ----------------------------------------------------------------------------------
is(psql("SELECT pay.balance('merchant:acme:USD')"), '3100', 'the merchant holds what the PSP kept: 3100');
is(psql('SELECT count(*) FROM pay.anomalies'), '0', 'no anomaly anywhere');
is(psql('SELECT count(*) FROM pay.ledger_problems'), '0', 'the books are sound');
is(psql('SELECT count(*) FROM pay.order_ledger_mismatches'), '0', 'every order\'s ledger explains its money');
is(scalar @{ control('GET', '/control/effects')->{totals}{keys_with_more_than_one_effect} }, 0,
	'no key had two effects at the fake PSP');
is(psql("SELECT count(*) FROM pay.outbox WHERE kind = 'psp_request' AND state <> 'done'"), '0',
	'every request to the PSP is done');

$proxy->kill_kill;
$fake->signal('TERM');
$fake->finish;
done_testing();
