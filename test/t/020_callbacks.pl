# Callbacks end to end over real HTTP: a cluster with pay, pay-proxy in
# front of it, and the fake PSP (test/fake_psp, its own crypto) sending
# signed Stripe, Alipay, WeChat Pay and generic callbacks.  Every numbered
# point of the callback contract, 50 concurrent duplicates, and each way a
# callback can be bad: a 4xx, a recorded callback, nothing else changed.
# Also the merchant REST API, signed here with Perl's Digest::SHA.
use strict;
use warnings;
use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256_hex);
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = abs_path(dirname(__FILE__) . '/../..');
my $fake_dir = "$top/test/fake_psp";
my $json = JSON::PP->new->canonical;
my $cfg = $json->decode(slurp_file("$fake_dir/config.json"));
my $http = HTTP::Tiny->new(timeout => 30);

# --- the cluster --------------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('callbacks');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pay'
pay.master_key_file = '$top/test/keys/master-a.hex'
pay.allow_private_destinations = on
max_connections = 100
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pay');
$node->safe_psql('postgres', 'CREATE ROLE proxy LOGIN IN ROLE pay_callback, pay_app');

# --- the fake PSP ---------------------------------------------------------
my ($fake_out, $fake_err) = ('', '');
my $fake = IPC::Run::start(['/usr/bin/python3', "$fake_dir/fake_psp.py", '--port', '0'],
	'>', \$fake_out, '2>', \$fake_err);
my $deadline = time + 30;
$fake->pump until $fake_out =~ /listening (\d+)/ || time > $deadline;
my ($fake_port) = $fake_out =~ /listening (\d+)/;
ok($fake_port, "fake PSP listening on $fake_port");
my $fake_url = "http://127.0.0.1:$fake_port";

# --- pay-proxy --------------------------------------------------------------
system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);
my ($proxy_out, $proxy_err) = ('', '');
my $proxy = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$proxy_port",
		'--pool-size', '8', '--max-body-bytes', '65536'],
	'>', \$proxy_out, '2>', \$proxy_err);
my $proxy_url = "http://127.0.0.1:$proxy_port";
$deadline = time + 30;
until (($http->get("$proxy_url/healthz")->{status} // 0) == 200 || time > $deadline) { select(undef, undef, undef, 0.1) }
is($http->get("$proxy_url/healthz")->{status}, 200, 'pay-proxy is up');

# --- gateways, secrets and a merchant that match the fake PSP ----------------
my $keys = "$fake_dir/keys";
my $serial = $cfg->{pay}{wechat_platform_serial};
$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('stripe_fake', 'stripe', '$fake_url');
SELECT pay.create_gateway('alipay_fake', 'alipay', '$fake_url');
SELECT pay.create_gateway('wechat_fake', 'wechatpay', '$fake_url');
-- (no base_url: pay sends the generic scheme no requests, the fake plays only its callbacks)
SELECT pay.create_gateway('generic_fake', 'generic');
SELECT pay.set_secret('gateway:stripe_fake', 'webhook_secret', '$cfg->{stripe}{webhook_secret}');
SELECT pay.set_secret('gateway:alipay_fake', 'public_key', pg_read_file('$keys/alipay_platform_public.pem'));
SELECT pay.set_secret('gateway:wechat_fake', 'platform_cert:$serial', pg_read_file('$keys/wechat_platform_cert.pem'));
SELECT pay.set_secret('gateway:wechat_fake', 'apiv3_key', '$cfg->{wechatpay}{apiv3_key}');
SELECT pay.set_secret('gateway:generic_fake', 'webhook_secret', '$cfg->{generic}{webhook_secret}');
SELECT pay.create_merchant('acme', 'ACME', '$fake_url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
SELECT pay.create_merchant('other', 'Other', '$fake_url/merchant/other/notify');
SELECT pay.set_secret('merchant:other', 'api_secret', '$cfg->{merchants}{other}{api_secret}');
});

# --- helpers ------------------------------------------------------------------
my $n_order = 0;

# a pending order routed to a gateway; its id
sub new_order
{
	my ($gateway, $amount, $currency) = @_;
	$n_order++;
	return $node->safe_psql('postgres',
		"SELECT id FROM pay.create_order('acme', 'E2E-$n_order', $amount, '$currency', gateway => '$gateway')");
}

# ask the fake PSP to send callbacks through the proxy; the list of results
sub send_callbacks
{
	my (%p) = @_;
	my $res = $http->post("$fake_url/control/send",
		{ content => $json->encode({ target => $proxy_url, %p }), headers => { 'Content-Type' => 'application/json' } });
	die "control/send: $res->{status} $res->{content}" unless $res->{status} == 200;
	return $json->decode($res->{content})->{results};
}

sub q1 { return $node->safe_psql('postgres', shift) }

# counts of everything a callback may change, to show that nothing did
sub state_counts
{
	return q1(q{SELECT format('orders=%s events=%s postings=%s entries=%s refunds=%s outbox=%s anomalies=%s',
		(SELECT count(*) FROM pay.orders), (SELECT count(*) FROM pay.order_events),
		(SELECT count(*) FROM pay.postings), (SELECT count(*) FROM pay.entries),
		(SELECT count(*) FROM pay.refunds), (SELECT count(*) FROM pay.outbox),
		(SELECT count(*) FROM pay.anomalies))});
}

sub callbacks_count { return q1('SELECT count(*) FROM pay.callbacks') }

sub last_callback
{
	return q1(q{SELECT verdict || ' ' || coalesce(reason_code, '-') FROM pay.callbacks ORDER BY id DESC LIMIT 1});
}

# --- 1-8: a payment per provider ---------------------------------------------
my %paid = (
	stripe => ['stripe_fake', 2599, 'USD', 200, qr/^\{"received":true\}$/],
	alipay => ['alipay_fake', 1234, 'CNY', 200, qr/^success$/],
	wechatpay => ['wechat_fake', 888, 'CNY', 200, qr/"code":"SUCCESS"/],
	generic => ['generic_fake', 4500, 'USD', 200, qr/^success$/],
);
for my $provider (sort keys %paid)
{
	my ($gw, $amount, $cur, $status, $body_re) = @{ $paid{$provider} };
	my $id = new_order($gw, $amount, $cur);
	my $before_cb = callbacks_count();
	my $r = send_callbacks(provider => $provider, gateway => $gw, order_id => $id, amount => $amount,
		currency => $cur, event => 'paid')->[0];
	is($r->{status}, $status, "$provider: success callback answered $status");
	like($r->{body}, $body_re, "$provider: the body the PSP expects");
	is(q1("SELECT status FROM pay.orders WHERE id = $id"), 'paid', "$provider: order $id is paid");
	is(callbacks_count(), $before_cb + 1, "$provider: the callback is recorded");
	is(q1("SELECT verdict || ' ' || order_id FROM pay.callbacks ORDER BY id DESC LIMIT 1"), "accepted $id",
		"$provider: recorded as accepted for the order");
	is(q1("SELECT count(*) FROM pay.postings WHERE order_id = $id"), 1, "$provider: one ledger posting");
	is(q1("SELECT sum(e.amount) FROM pay.entries e JOIN pay.postings p ON p.id = e.posting_id
	       JOIN pay.accounts a ON a.id = e.account_id WHERE p.order_id = $id AND a.code = 'merchant:acme:$cur'"),
		$amount, "$provider: the merchant is credited exactly $amount minor units");
	is(q1("SELECT count(*) FROM pay.outbox WHERE order_id = $id AND kind = 'merchant_notification'"), 1,
		"$provider: one merchant notification queued in the same transaction");
}

# the raw request is kept byte for byte, headers included
my $raw = q1(q{SELECT body FROM pay.callbacks WHERE gateway = 'alipay_fake' ORDER BY id LIMIT 1});
like($raw, qr/^[^{]*total_amount=12\.34/, 'alipay: the raw form body is kept as received');
like(q1(q{SELECT headers::text FROM pay.callbacks WHERE gateway = 'stripe_fake' ORDER BY id LIMIT 1}),
	qr/Stripe-Signature/, 'stripe: the headers are kept as received');

# --- 50 identical callbacks at once: one state change ------------------------
{
	my $id = new_order('stripe_fake', 777, 'USD');
	my $results = send_callbacks(provider => 'stripe', gateway => 'stripe_fake', order_id => $id, amount => 777,
		currency => 'USD', event => 'paid', variant => 'duplicate', count => 50, concurrency => 50);
	is(scalar(@$results), 50, '50 identical callbacks sent at once');
	is(scalar(grep { ($_->{status} // 0) == 200 } @$results), 50, 'all 50 acknowledged (one accepted, 49 duplicates)');
	is(q1("SELECT count(*) FROM pay.order_events WHERE order_id = $id"), 1, 'exactly one state change');
	is(q1("SELECT count(*) FROM pay.postings WHERE order_id = $id"), 1, 'exactly one set of ledger entries');
	is(q1("SELECT count(*) FROM pay.outbox WHERE order_id = $id AND kind = 'merchant_notification'"), 1,
		'exactly one merchant notification');
	is(q1("SELECT string_agg(verdict || '=' || n, ',' ORDER BY verdict) FROM
	         (SELECT verdict, count(*) n FROM pay.callbacks WHERE gateway = 'stripe_fake' AND event_id =
	            (SELECT event_id FROM pay.callbacks WHERE order_id = $id AND verdict = 'accepted')
	           GROUP BY verdict) v"),
		'accepted=1,duplicate=49', 'all 50 recorded: one accepted, 49 duplicates');

	# WeChat Pay retries (same event, fresh nonce and signature) are duplicates too
	my $wid = new_order('wechat_fake', 990, 'CNY');
	$results = send_callbacks(provider => 'wechatpay', gateway => 'wechat_fake', order_id => $wid, amount => 990,
		event => 'paid', variant => 'redeliver', count => 20, concurrency => 20);
	is(scalar(grep { ($_->{status} // 0) == 200 } @$results), 20, 'wechatpay: 20 redeliveries all acknowledged');
	is(q1("SELECT count(*) FROM pay.postings WHERE order_id = $wid"), 1, 'wechatpay: booked once');
}

# --- each way a callback can be bad: 4xx, recorded, nothing else changed ----
sub refused_ok
{
	my ($what, $send, $status_re, $verdict_re) = @_;
	my $before = state_counts();
	my $before_cb = callbacks_count();
	my $status = $send->();
	like($status, $status_re, "$what: answered $status");
	is(callbacks_count(), $before_cb + 1, "$what: recorded");
	like(last_callback(), $verdict_re, "$what: recorded with its reason");
	is(state_counts(), $before, "$what: nothing else changed");
}

my $bad_id = new_order('stripe_fake', 1500, 'USD');
for my $v (['wrong_key', qr/^rejected PY010/], ['tampered', qr/^rejected PY010/], ['stale', qr/^rejected PY011/],
	['unsigned', qr/^rejected PY010/])
{
	refused_ok("stripe $v->[0]", sub {
			send_callbacks(provider => 'stripe', gateway => 'stripe_fake', order_id => $bad_id, amount => 1500,
				currency => 'USD', event => 'paid', variant => $v->[0])->[-1]{status} },
		qr/^4\d\d$/, $v->[1]);
}
my $wbad = new_order('wechat_fake', 300, 'CNY');
for my $v (['wrong_key', qr/^rejected PY010/], ['wrong_serial', qr/^rejected PY010/],
	['wrong_apiv3_key', qr/^rejected PY010/], ['stale', qr/^rejected PY011/])
{
	refused_ok("wechatpay $v->[0]", sub {
			send_callbacks(provider => 'wechatpay', gateway => 'wechat_fake', order_id => $wbad, amount => 300,
				event => 'paid', variant => $v->[0])->[-1]{status} },
		qr/^4\d\d$/, $v->[1]);
}
{
	# a replayed nonce: the first callback is applied, the replay refused
	my $rid = new_order('wechat_fake', 301, 'CNY');
	my $results = send_callbacks(provider => 'wechatpay', gateway => 'wechat_fake', order_id => $rid, amount => 301,
		event => 'paid', variant => 'replayed_nonce');
	is($results->[0]{status}, 200, 'wechatpay replayed nonce: the first is accepted');
	is($results->[1]{status}, 401, 'wechatpay replayed nonce: the replay is refused with 401');
	like(last_callback(), qr/^rejected PY012/, 'wechatpay replayed nonce: recorded as PY012');
}

sub post_raw
{
	my ($path, $ctype, $body) = @_;
	return $http->post("$proxy_url$path", { content => $body, headers => { 'Content-Type' => $ctype } })->{status};
}
refused_ok('malformed body', sub { post_raw('/callbacks/stripe_fake', 'application/json', '{"id": nope') },
	qr/^4\d\d$/, qr/^rejected PY010/);
refused_ok('malformed alipay form', sub { post_raw('/callbacks/alipay_fake', 'application/x-www-form-urlencoded', 'a=%ZZ') },
	qr/^400$/, qr/^rejected 22P02/);
refused_ok('oversized body', sub { post_raw('/callbacks/stripe_fake', 'application/json', 'x' x 70000) },
	qr/^413$/, qr/^rejected 54000/);
refused_ok('invalid UTF-8', sub { post_raw('/callbacks/alipay_fake', 'application/x-www-form-urlencoded', "a=\xff\xfe") },
	qr/^400$/, qr/^rejected 22021/);
is(q1(q{SELECT encode(body_bytes, 'hex') FROM pay.callbacks ORDER BY id DESC LIMIT 1}), '613dfffe',
	'invalid UTF-8: the raw bytes are kept');
# a name that is no gateway: 404, counted per day, never stored (anyone can send these)
{
	my $before = state_counts();
	my $before_cb = callbacks_count();
	my $unknown = sub { q1(q{SELECT coalesce(sum(callbacks), 0) || ' ' || coalesce(sum(body_bytes), 0)
	                         FROM pay.unknown_gateway_callbacks}) };
	my ($n0, $bytes0) = split / /, $unknown->();
	is(post_raw('/callbacks/no_such_gateway', 'application/json', 'x' x 60000), 404, 'unknown gateway: answered 404');
	is(post_raw('/callbacks/no_such_gateway', 'application/json', 'x' x 70000), 413,
		'unknown gateway, oversized body: answered 413');
	is(callbacks_count(), $before_cb, 'unknown gateway: nothing recorded in pay.callbacks');
	is($unknown->(), ($n0 + 2) . ' ' . ($bytes0 + 60000), 'unknown gateway: counted, with the bytes it sent');
	is(state_counts(), $before, 'unknown gateway: nothing else changed');
}

# a flood of unsigned callbacks to a real gateway keeps at most
# pay.callback_unverified_body_max bytes of each body
q1(q{ALTER SYSTEM SET pay.callback_unverified_body_max = '1kB'});
q1(q{SELECT pg_reload_conf()});
{
	my $before_cb = callbacks_count();
	my @status = map { post_raw('/callbacks/stripe_fake', 'application/json', '{"id":"' . ('y' x 60000) . '"}') } 1 .. 10;
	is(join(',', @status), join(',', ('401') x 10), 'unsigned flood: each answered 401');
	is(q1("SELECT count(*) || ' ' || sum(octet_length(body)) || ' ' || sum(body_length)
	       FROM pay.callbacks WHERE id > (SELECT max(id) - 10 FROM pay.callbacks)"), '10 10240 600090',
		'unsigned flood: 1 kB of each 60 kB body kept, the full length recorded');
	is(callbacks_count(), $before_cb + 10, 'unsigned flood: one row each');
}
q1(q{ALTER SYSTEM RESET pay.callback_unverified_body_max});
q1(q{SELECT pg_reload_conf()});
my $ct_id = new_order('generic_fake', 100, 'USD');
refused_ok('wrong Content-Type', sub {
		my $id = $ct_id;
		my %p = (event_id => "ct-$id", out_trade_no => $id, trade_no => "t-$id", status => 'paid', amount => '100',
			currency => 'USD', timestamp => time, nonce => "nonce-ct-$id");
		my $canonical = join '&', map { "$_=$p{$_}" } sort keys %p;
		$p{sign} = hmac_sha256_hex($canonical, $cfg->{generic}{webhook_secret});
		post_raw('/callbacks/generic_fake', 'text/plain', $json->encode(\%p)) },
	qr/^400$/, qr/^rejected 22023/);

# --- 5: amount and currency checked exactly; a mismatch moves nothing -------
{
	my $id = new_order('alipay_fake', 1236, 'CNY');
	my $before = q1("SELECT count(*) FROM pay.postings WHERE order_id = $id");
	my $r = send_callbacks(provider => 'alipay', gateway => 'alipay_fake', order_id => $id, amount => 1235,
		event => 'paid')->[0];
	is($r->{status}, 200, 'alipay amount mismatch: acknowledged (authentic, recorded)');
	is(q1("SELECT status FROM pay.orders WHERE id = $id"), 'pending', 'alipay amount mismatch: the order did not move');
	is(q1("SELECT kind FROM pay.anomalies WHERE order_id = $id"), 'amount_mismatch', 'alipay amount mismatch: anomaly recorded');
	is(q1("SELECT count(*) FROM pay.postings WHERE order_id = $id"), $before, 'alipay amount mismatch: no ledger entries');
}

# --- 6: out of order: a refund before the payment; a success after a close --
{
	my $id = new_order('stripe_fake', 3000, 'USD');
	my $results = send_callbacks(provider => 'stripe', gateway => 'stripe_fake', order_id => $id, amount => 3000,
		currency => 'USD', event => 'refunded', refund_amount => 1000, variant => 'out_of_order');
	is(join(',', map { $_->{status} } @$results), '200,200', 'stripe refund before payment: both acknowledged');
	is(q1("SELECT status || ' ' || refunded_amount FROM pay.orders WHERE id = $id"), 'paid 1000',
		'stripe refund before payment: paid, then the waiting refund applied');

	my $cid = new_order('stripe_fake', 900, 'USD');
	q1("SELECT pay.cancel($cid, 'buyer left')");
	my $r = send_callbacks(provider => 'stripe', gateway => 'stripe_fake', order_id => $cid, amount => 900,
		currency => 'USD', event => 'paid')->[0];
	is($r->{status}, 200, 'success after cancel: acknowledged');
	is(q1("SELECT status FROM pay.orders WHERE id = $cid"), 'cancelled', 'success after cancel: the order stays cancelled');
	is(q1("SELECT kind FROM pay.anomalies WHERE order_id = $cid"), 'payment_after_cancelled',
		'success after cancel: anomaly recorded');
	is(q1("SELECT count(*) FROM pay.outbox WHERE order_id = $cid AND kind = 'psp_request' AND operation = 'refund'"), 1,
		'success after cancel: an automatic refund is queued');
	is(q1("SELECT sum(e.amount) FROM pay.entries e JOIN pay.postings p ON p.id = e.posting_id
	       JOIN pay.accounts a ON a.id = e.account_id WHERE p.order_id = $cid AND a.code LIKE 'psp:%'"), 0,
		'success after cancel: the money is booked and booked back');
}

is(q1('SELECT count(*) FROM pay.order_ledger_mismatches'), 0, 'the ledger explains every order');
is(q1('SELECT count(*) FROM pay.ledger_problems'), 0, 'the ledger balances');

# --- the merchant REST API through the proxy ---------------------------------
sub api
{
	my ($method, $path, $merchant, $params, %opt) = @_;
	my $secret = $cfg->{merchants}{$merchant}{api_secret};
	my $ts = $opt{ts} // time;
	my $nonce = $opt{nonce} // sprintf('nonce-%08d', int(rand(1e8)));
	my %signed = (%$params, merchant => $merchant, timestamp => $ts, nonce => $nonce);
	my $canonical = join '&', map {
		my $v = $signed{$_};
		$v = JSON::PP->new->canonical->encode($v) if ref $v;
		"$_=$v" } grep { $signed{$_} ne '' } sort keys %signed;
	my %headers = ('X-Pay-Merchant' => $merchant, 'X-Pay-Timestamp' => $ts, 'X-Pay-Nonce' => $nonce,
		'X-Pay-Signature' => $opt{sig} // hmac_sha256_hex($canonical, $secret),
		'Content-Type' => 'application/json', %{ $opt{headers} // {} });
	my $res = $method eq 'POST'
	  ? $http->post("$proxy_url$path", { content => $json->encode($params), headers => \%headers })
	  : $http->get("$proxy_url$path", { headers => \%headers });
	return ($res->{status}, $res->{content} ? eval { $json->decode($res->{content}) } // $res->{content} : undef);
}
{
	my $order = { merchant_order_no => 'REST-1', amount => 2500, currency => 'EUR', metadata => { sku => 'x-1' } };
	my ($st, $body) = api('POST', '/api/v1/payments', 'acme', $order, headers => { 'Idempotency-Key' => 'rest-key-1' });
	is($st, 201, 'REST: create answers 201');
	is($body->{status}, 'pending', 'REST: the order as JSON');
	my ($st2, $body2) = api('POST', '/api/v1/payments', 'acme', $order, headers => { 'Idempotency-Key' => 'rest-key-1' });
	is($body2->{id}, $body->{id}, 'REST: the same Idempotency-Key returns the same order');
	my ($st3, $body3) = api('POST', '/api/v1/payments', 'acme', { %$order, amount => 2600 },
		headers => { 'Idempotency-Key' => 'rest-key-1' });
	is($st3, 422, 'REST: the key with other parameters is 422');
	is($body3->{error}{code}, 'idempotency_conflict', 'REST: with a stable error code');
	my ($st4) = api('POST', '/api/v1/payments', 'acme', { %$order, merchant_order_no => 'REST-2' }, sig => 'ab' x 32);
	is($st4, 401, 'REST: a bad signature is 401');
	my ($st5) = api('POST', '/api/v1/payments', 'acme', { %$order, merchant_order_no => 'REST-3' }, ts => time - 3600);
	is($st5, 401, 'REST: a stale timestamp is 401');
	my ($st6) = api('POST', '/api/v1/payments', 'acme', { %$order, merchant_order_no => 'REST-4', amount => -1 });
	is($st6, 400, 'REST: a bad amount is 400');
	my ($st7) = api('POST', '/api/v1/payments', 'acme', { merchant_order_no => 'REST-1', amount => 2500, currency => 'EUR' });
	is($st7, 409, 'REST: a repeated merchant_order_no without a key is 409');
	my ($st8, $got) = api('GET', "/api/v1/payments/$body->{id}", 'acme', { id => "$body->{id}" });
	is("$st8 $got->{merchant_order_no}", '200 REST-1', 'REST: GET returns the order');
	my ($st9) = api('GET', "/api/v1/payments/$body->{id}", 'other', { id => "$body->{id}" });
	is($st9, 404, "REST: another merchant's order is 404");
}

$proxy->signal('TERM');
$proxy->finish;
is($proxy->result(0), 0, 'pay-proxy exits 0 on SIGTERM');
$fake->signal('TERM');
$fake->finish;
done_testing();
