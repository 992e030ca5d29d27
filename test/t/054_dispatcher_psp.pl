# RequestBuilder end to end: the dispatcher sends signed Stripe, Alipay and
# WeChat Pay requests (create_payment, query, refund, close) and merchant
# notifications to the fake PSP (test/fake_psp, its own crypto), which
# verifies every signature and counts effects per idempotency key.  An
# answer lost after its effect ("after" faults) is retried with the same key:
# one effect.  The fake's answers are verified and applied (pay.psp_answers):
# the buyer's next step of each create, a refusal fails its order, a query
# that finds the payment pays the order.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Cwd qw(abs_path);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PayDispatcherTest;

my $top = abs_path("$FindBin::Bin/../..");
my $fake_dir = "$top/test/fake_psp";
my $keys = "$fake_dir/keys";
my $json = JSON::PP->new->canonical;
my $cfg = $json->decode(slurp_file("$fake_dir/config.json"));
my $http = HTTP::Tiny->new(timeout => 30);

my $psp = start_fake_psp();
my $fake = $psp->{handle};
my $url = $psp->{url};
sub control { return $psp->{control}->(@_) }

my $node = pay_node('psp', q{
pay.psp_retry_base = '50ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
});
my $w = $cfg->{wechatpay};
$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('st', 'stripe', '$url');
SELECT pay.create_gateway('ali', 'alipay', '$url', '{"app_id": "$cfg->{alipay}{app_id}"}');
SELECT pay.create_gateway('wx', 'wechatpay', '$url', '{"mchid": "$w->{mchid}", "appid": "$w->{appid}",
  "serial_no": "$cfg->{pay}{wechat_merchant_serial}", "notify_url": "https://pay.example/callbacks/wx"}');
SELECT pay.set_secret('gateway:st', 'api_key', '$cfg->{stripe}{api_key}');
SELECT pay.set_secret('gateway:ali', 'private_key', pg_read_file('$keys/alipay_app_private.pem'));
SELECT pay.set_secret('gateway:ali', 'public_key', pg_read_file('$keys/alipay_platform_public.pem'));
SELECT pay.set_secret('gateway:wx', 'private_key', pg_read_file('$keys/wechat_merchant_private.pem'));
SELECT pay.set_secret('gateway:wx', 'platform_cert:$cfg->{pay}{wechat_platform_serial}', pg_read_file('$keys/wechat_platform_cert.pem'));
SELECT pay.create_merchant('acme', 'ACME', '$url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
});

sub order { $node->safe_psql('postgres', "SELECT id FROM pay.create_order('acme', '$_[0]', $_[1], '$_[2]', gateway => '$_[3]')") }
sub send_and_wait
{
	my ($order, $op, $params) = @_;
	my $id = $node->safe_psql('postgres', "SELECT pay.enqueue_psp_request($order, '$op', '" . ($params // '{}') . "')");
	wait_for_sql($node, "SELECT state IN ('done', 'dead') FROM pay.outbox WHERE id = $id", 20);
	return $node->safe_psql('postgres', "SELECT state || ':' || attempts || ':' || coalesce(last_status, 0) || ':' || coalesce(last_error, '') FROM pay.outbox WHERE id = $id");
}
sub effects { control('GET', "/control/effects?prefix=$_[0]")->{keys} }
sub next_action { $node->safe_psql('postgres', "SELECT next_action->>'type' || ' ' || (next_action->>\$\$$_[1]\$\$) FROM pay.orders WHERE id = $_[0]") }
# status, and what moved it last ("query <outbox id>" as N)
sub moved { $node->safe_psql('postgres', "SELECT o.status || ' ' || regexp_replace(e.cause, '[0-9]+', 'N') FROM pay.orders o JOIN pay.order_events e ON e.order_id = o.id WHERE o.id = $_[0] ORDER BY e.id DESC LIMIT 1") }

# Stripe: a payment intent, its id stored; a refund whose first answer is lost.
# (create_order queued the create request; enqueuing it again is that row.
# The buyer pays at Stripe: the fake's /control/pay.)
my $so = order('S-1', 1234, 'USD', 'st');
is(send_and_wait($so, 'create_payment'), 'done:1:200:', 'Stripe create_payment: done');
like($node->safe_psql('postgres', "SELECT psp_txn_id FROM pay.orders WHERE id = $so"), qr/^pi_/, 'the payment intent id is stored on the order');
like(next_action($so, 'client_secret'), qr/^client_secret pi_\w+_secret_\w+$/, 'Stripe: the client_secret is the next action');
control('POST', '/control/pay', { provider => 'stripe', order_id => "$so", amount => 1234, currency => 'USD' });
is(send_and_wait($so, 'query'), 'done:1:200:', 'Stripe query: done');
is(moved($so), 'paid query N', 'the query found the payment intent succeeded: the order is paid');
$node->safe_psql('postgres', "SELECT pay.mark_paid($so, (SELECT psp_txn_id FROM pay.orders WHERE id = $so), 1234, 'USD')");
control('POST', '/control/faults', { path => '/v1/refunds', method => 'POST', mode => 'status', status => 500, count => 1, after => JSON::PP::true });
my $sr = $node->safe_psql('postgres', "SELECT pay.refund($so, 400)");    # queues the PSP refund
is(send_and_wait($so, 'refund', qq({"refund_id": $sr})), 'done:2:200:', 'Stripe refund: the lost answer is retried, then done');
my $e = effects("stripe:psp_${so}_refund_$sr");
is($e->{"stripe:psp_${so}_refund_$sr"}{requests} . ':' . $e->{"stripe:psp_${so}_refund_$sr"}{effects}, '2:1',
	'two requests under one Idempotency-Key, one refund');
is(control('GET', '/control/effects')->{orders}{"stripe:$so"}{refunds}, 1, 'the fake holds one refund for the order');

# Alipay: RSA2-signed requests; answers verified with the platform key.
my $ao = order('A-1', 10000, 'CNY', 'ali');
is(send_and_wait($ao, 'create_payment'), 'done:1:200:', 'Alipay precreate: done (the fake checked our RSA2 signature, we checked its)');
like(next_action($ao, 'qr_code'), qr{^qr_code https://qr\.alipay\.com/\w+$}, 'Alipay: the QR code is the next action');
control('POST', '/control/pay', { provider => 'alipay', order_id => "$ao", amount => 10000, currency => 'CNY' });
is(send_and_wait($ao, 'query'), 'done:1:200:', 'Alipay query: done');
is(moved($ao), 'paid query N', 'the query found TRADE_SUCCESS: the order is paid');
like($node->safe_psql('postgres', "SELECT psp_txn_id FROM pay.orders WHERE id = $ao"), qr/^\d{10,}/, 'the trade_no is stored on the order');
$node->safe_psql('postgres', "SELECT pay.mark_paid($ao, (SELECT psp_txn_id FROM pay.orders WHERE id = $ao), 10000, 'CNY')");
control('POST', '/control/faults', { path => '/gateway.do', method => 'POST', mode => 'reset', count => 1, after => JSON::PP::true });
my $ar = $node->safe_psql('postgres', "SELECT pay.refund($ao, 2500)");
like(send_and_wait($ao, 'refund', qq({"refund_id": $ar})), qr/^done:\d:200:$/, 'Alipay refund: reset after the effect, sent again, done');
my $k = effects("alipay:refund:$ao:$ar")->{"alipay:refund:$ao:$ar"};
is("$k->{requests}:$k->{effects}", '2:1', 'two requests under one out_request_no (libcurl or our retry sent it again), one refund');
is(send_and_wait($ao, 'query_refund', qq({"refund_id": $ar})), 'done:1:200:', 'Alipay refund query (fastpay.refund.query): done');
is($node->safe_psql('postgres', "SELECT psp_status FROM pay.refunds WHERE id = $ar"), 'succeeded', 'Alipay confirmed the refund');
my $ac = order('A-2', 500, 'CNY', 'ali');
is(send_and_wait($ac, 'create_payment'), 'done:1:200:', 'Alipay precreate of a second order');
is(send_and_wait($ac, 'close'), 'done:1:200:', 'Alipay close: done');

# WeChat Pay v3: JSON bodies and the WECHATPAY2-SHA256-RSA2048 Authorization.
# Order ids here are below 100000: out_trade_no goes out zero-padded to the
# 6 characters WeChat Pay requires (the fake refuses shorter ones).
my $xo = order('X-1', 8800, 'CNY', 'wx');
ok($xo < 100000, 'a WeChat Pay order with an id of fewer than 6 digits');
is(send_and_wait($xo, 'create_payment'), 'done:1:200:', 'WeChat Pay native order: done (the fake checked our Authorization)');
like(next_action($xo, 'code_url'), qr{^code_url weixin://wxpay/bizpayurl\?pr=\w+$},
	'WeChat Pay: the code_url is the next action (the answer verified with the platform certificate)');
control('POST', '/control/pay', { provider => 'wechatpay', order_id => sprintf('%06d', $xo), amount => 8800, currency => 'CNY' });
is(send_and_wait($xo, 'query'), 'done:1:200:', 'WeChat Pay query: done');
is(moved($xo), 'paid query N', 'the query found trade_state SUCCESS: the order is paid');
like($node->safe_psql('postgres', "SELECT psp_txn_id FROM pay.orders WHERE id = $xo"), qr/^\d{10,}/, 'the transaction_id is stored on the order');
$node->safe_psql('postgres', "SELECT pay.mark_paid($xo, (SELECT psp_txn_id FROM pay.orders WHERE id = $xo), 8800, 'CNY')");
my $xr = $node->safe_psql('postgres', "SELECT pay.refund($xo, 8800)");
is(send_and_wait($xo, 'refund', qq({"refund_id": $xr})), 'done:1:200:', 'WeChat Pay refund: done');
my $xc = order('X-2', 100, 'CNY', 'wx');
is(send_and_wait($xc, 'create_payment'), 'done:1:200:', 'WeChat Pay second order');
is(send_and_wait($xc, 'close'), 'done:1:204:', 'WeChat Pay close: 204, done');

is($node->safe_psql('postgres', "SELECT psp_status FROM pay.refunds WHERE id = $xr"), 'requested', 'WeChat Pay answers PROCESSING: requested');
is(send_and_wait($xo, 'query_refund', qq({"refund_id": $xr})), 'done:1:200:', 'WeChat Pay refund query: done');
like($node->safe_psql('postgres', "SELECT psp_status || ' ' || psp_refund_id FROM pay.refunds WHERE id = $xr"), qr/^succeeded \d+$/,
	'the query found the refund SUCCESS: succeeded, with WeChat Pay\'s refund_id');

# A refusal of a create (a 4xx): the order fails with the PSP's reason.
# (create_order queues the create at once: the fake answers it with
# Stripe's card_declined error, once.)
control('POST', '/control/faults', { path => '/v1/payment_intents', method => 'POST', mode => 'status', status => 402,
	count => 1, content_type => 'application/json',
	body => '{"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined."}}' });
my $sd = order('S-3', 500, 'USD', 'st');
is(send_and_wait($sd, 'create_payment'), 'dead:1:402:HTTP 402 (permanent)', 'a declined card: 402, dead');
like($node->safe_psql('postgres', "SELECT verdict || ' ' || reason FROM pay.psp_answers WHERE order_id = $sd"),
	qr/^refused refused by the PSP: .+; order failed$/, 'the refusal is kept');
like($node->safe_psql('postgres', "SELECT status || ' ' || failure_reason FROM pay.orders WHERE id = $sd"), qr/^failed Your card was declined/,
	'the order failed, with Stripe\'s reason');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT verdict, ',' ORDER BY verdict) FROM pay.psp_answers}), 'applied,refused',
	'every answer was kept: applied or refused, none rejected');

# Merchant notifications to the fake's notify sink, which checks sign, timestamp and nonce.
ok(wait_for_sql($node, q{SELECT count(*) = 8 AND bool_and(state = 'done') FROM pay.outbox WHERE kind = 'merchant_notification'}, 20),
	'the eight notifications (three orders paid, three refunds, one order refunded, one failed) are accepted by the merchant sink');
my $m = effects('merchant:acme:');
is(scalar(grep { $m->{$_}{effects} == 1 } keys %$m), 8, 'each has one effect at the merchant');

# A request that cannot be built (no credentials) is retried, never sent; the fake saw nothing.
$node->safe_psql('postgres', "SELECT pay.create_gateway('st2', 'stripe', '$url')");
my $no = order('S-2', 100, 'USD', 'st2');
my $id = $node->safe_psql('postgres', "SELECT pay.enqueue_psp_request($no, 'create_payment')");
ok(wait_for_sql($node, "SELECT attempts >= 2 FROM pay.outbox WHERE id = $id", 10), 'a request without credentials is retried');
# (read while it is retried: pending, or claimed again for the next attempt)
like($node->safe_psql('postgres', "SELECT state || ': ' || last_error FROM pay.outbox WHERE id = $id"),
	qr/^(pending|in_flight): building the request failed: 42704: .*api_key/, 'saying which secret is missing');
is(scalar @{ control('GET', '/control/effects')->{totals}{keys_with_more_than_one_effect} }, 0, 'no key had two effects at the fake PSP');

$fake->signal('TERM');
$fake->finish;
$node->stop('immediate');
done_testing();
