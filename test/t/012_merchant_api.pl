# The merchant REST API through pay-proxy over real HTTP: every route, a
# checkout that waits for the PSP's answer (201 with next_action when it is
# stored during the wait, woken at that commit; 202 with Location when it
# is not), capture and void of a two-phase payment, pagination, another
# merchant's payment and refund answering 404
# exactly like missing ones, and each class of error with its JSON body and
# nothing written.
use strict;
use warnings;
use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256_hex);
use FindBin;
use lib "$FindBin::Bin/../lib";
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use PayDispatcherTest;

my $top = abs_path("$FindBin::Bin/../..");
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $http = HTTP::Tiny->new(timeout => 20);
my $json = JSON::PP->new->canonical;

my $node = pay_node('api', "pay.psp_retry_base = '10s'\n");
sub q1 { return $node->safe_psql('postgres', shift) }

# A gateway nobody answers at (a closed port): its create requests stay
# queued, so a checkout waits for an answer that only a test writes.
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
my %secret = (shopa => 'api-secret-a', shopb => 'api-secret-b');
q1(qq{
SELECT pay.create_merchant('shopa', 'Shop A'), pay.create_merchant('shopb', 'Shop B');
SELECT pay.set_secret('merchant:shopa', 'api_secret', '$secret{shopa}');
SELECT pay.set_secret('merchant:shopb', 'api_secret', '$secret{shopb}');
SELECT pay.create_gateway('gdead', 'generic', 'http://127.0.0.1:$dead_port/psp');
CREATE ROLE proxy LOGIN IN ROLE pay_app;
ALTER ROLE proxy SET pay.checkout_wait = '3s';
});

system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);
my $proxy = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$proxy_port",
		'--pool-size', '4'], '>', "$tmp/proxy.out", '2>', "$tmp/proxy.log");
my $base = "http://127.0.0.1:$proxy_port";
my $deadline = time + 30;
sleep 0.1 until ($http->get("$base/healthz")->{status} // 0) == 200 || time > $deadline;

# A signed request (README, "Merchant API"): the signature covers the JSON
# body's members, the path's id and the query's parameters.
my $nonce = 0;
sub api
{
	my ($method, $path, %o) = @_;
	my $merchant = $o{merchant} // 'shopa';
	my %params = (%{ $o{body} // {} }, %{ $o{query} // {} }, defined $o{id} ? (id => $o{id}) : ());
	my %signed = (%params, merchant => $merchant, timestamp => $o{timestamp} // int(time),
		nonce => $o{nonce} // sprintf('nonce-%06d-%d', ++$nonce, $$));
	my $sig = hmac_sha256_hex(canonical(%signed), $o{secret} // $secret{$merchant});
	my %h = ('X-Pay-Merchant' => $merchant, 'X-Pay-Timestamp' => $signed{timestamp}, 'X-Pay-Nonce' => $signed{nonce},
		'X-Pay-Signature' => $o{signature} // $sig, %{ $o{headers} // {} });
	my $url = "$base$path";
	$url .= '?' . join '&', map { "$_=" . ($o{query}{$_} =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ger) }
	  sort keys %{ $o{query} } if $o{query};
	my $t0 = time;
	my $r = $http->request($method, $url, { headers => { %h, $o{raw} || $o{body} ? ('Content-Type' => 'application/json') : () },
		$o{raw} // $o{body} ? (content => $o{raw} // $json->encode($o{body})) : () });
	$r->{elapsed} = time - $t0;
	$r->{json} = eval { $json->decode($r->{content}) };
	return $r;
}
sub create
{
	my ($no, %o) = @_;
	return api('POST', '/api/v1/payments', body => { merchant_order_no => $no, amount => $o{amount} // 1000,
		currency => 'USD', $o{gateway} ? (gateway => $o{gateway}) : () }, %o);
}
# An error answer: status, exactly {"error":{code,field,message,sqlstate}}, code and SQLSTATE.
sub is_error
{
	my ($r, $status, $code, $sqlstate, $field, $name) = @_;
	is($r->{status}, $status, "$name: $status");
	my $e = ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef;
	ok(ref $e eq 'HASH' && keys %{ $r->{json} } == 1 && join(',', sort keys %$e) eq 'code,field,message,sqlstate',
		"$name: the body is {\"error\":{code, sqlstate, field, message}}") or diag($r->{content});
	is($e->{code}, $code, "$name: code $code");
	is($e->{sqlstate}, $sqlstate, "$name: sqlstate " . ($sqlstate // 'null'));
	is($e->{field}, $field, "$name: field " . ($field // 'null'));
}
# what a refusal must leave as it was
my $counts = q{SELECT (SELECT count(*) FROM pay.orders) || ' ' || (SELECT count(*) FROM pay.refunds) || ' '
  || (SELECT count(*) FROM pay.outbox) || ' ' || (SELECT count(*) FROM pay.postings)
  || ' ' || (SELECT string_agg(status, ',' ORDER BY id) FROM pay.orders)};

# ---------------------------------------------------------------------------
# POST /api/v1/payments

# nothing to wait for (no gateway: a wallet payment): 201 at once
my $r = create('W-1');
is($r->{status}, 201, 'a payment without a gateway: 201');
ok($r->{elapsed} < 2.5, 'at once, without waiting for a PSP');
ok(exists $r->{json}{next_action} && !defined $r->{json}{next_action} && exists $r->{json}{failure_reason},
	'the order shows next_action and failure_reason (null)');
my $wallet_order = $r->{json}{id};

# the PSP does not answer within pay.checkout_wait: 202 with Location
$r = create('D-1', gateway => 'gdead');
is($r->{status}, 202, 'no answer within the wait: 202');
my $d1 = $r->{json}{id};
is($r->{headers}{location}, "/api/v1/payments/$d1", 'Location names the payment');
is($r->{json}{status}, 'pending', 'the order is pending');
ok($r->{elapsed} >= 2.9 && $r->{elapsed} < 8, sprintf('after the wait (%.1f s)', $r->{elapsed}));
is(q1("SELECT operation || ' ' || state FROM pay.outbox WHERE order_id = $d1"), 'create_payment pending',
	'the create request was queued with the order');

# The PSP's answer stored by another session during the wait: 201 with
# next_action, woken by that commit (well before the 3 s wait is over).
sub create_in_background
{
	my ($no) = @_;
	my %signed = (merchant_order_no => $no, amount => 1000, currency => 'USD', gateway => 'gdead',
		merchant => 'shopa', timestamp => int(time), nonce => "bg-nonce-$no");
	my $body = $json->encode({ merchant_order_no => $no, amount => 1000, currency => 'USD', gateway => 'gdead' });
	my $out = '';
	my $h = IPC::Run::start(['curl', '-s', '-i', '-X', 'POST', "$base/api/v1/payments", '-H', 'Content-Type: application/json',
			'-H', 'X-Pay-Merchant: shopa', '-H', "X-Pay-Timestamp: $signed{timestamp}", '-H', "X-Pay-Nonce: $signed{nonce}",
			'-H', 'X-Pay-Signature: ' . hmac_sha256_hex(canonical(%signed), $secret{shopa}), '--data-binary', $body],
		'>', \$out);
	return ($h, \$out);
}
sub finish_background
{
	my ($h, $out) = @_;
	$h->finish;
	my ($head, $content) = split /\r\n\r\n/, $$out, 2;
	my ($status) = $head =~ m{^HTTP/\S+ (\d+)};
	return ($status, eval { $json->decode($content) } // {});
}
# the order exists once the create committed; the answer comes while the request waits
sub answer_during_wait
{
	my ($no, $set) = @_;
	my $t0 = time;
	my ($h, $out) = create_in_background($no);
	ok(wait_for_sql($node, "SELECT count(*) = 1 FROM pay.orders WHERE merchant_order_no = '$no'", 10),
		"$no: the create committed before the wait");
	sleep 0.5;
	q1("UPDATE pay.orders SET $set WHERE merchant_order_no = '$no'");
	my @r = finish_background($h, $out);
	return (@r, time - $t0);
}
my ($st, $order, $elapsed) = answer_during_wait('N-1',
	q{next_action = '{"type": "redirect", "url": "https://psp.example/approve/1"}'});
is($st, 201, 'the answer stored during the wait: 201');
is_deeply($order->{next_action}, { type => 'redirect', url => 'https://psp.example/approve/1' }, 'with next_action');
ok($elapsed < 2.5, sprintf('woken by the commit, not at the end of the wait (%.1f s)', $elapsed));
my $n1 = $order->{id};

# a PSP refusal: the order failed, with the PSP's reason
($st, $order, $elapsed) = answer_during_wait('F-1', q{status = 'failed', failure_reason = 'card_declined'});
is($st, 201, 'refused by the PSP during the wait: 201');
is("$order->{status} $order->{failure_reason}", 'failed card_declined', 'status failed with failure_reason');
ok($elapsed < 2.5, 'woken by the status change');

# an idempotent replay: the same order, nothing queued again, at once (it has its answer)
$r = create('K-1', gateway => 'gdead', headers => { 'Idempotency-Key' => 'key-k1' });
my $k1 = $r->{json}{id};
q1(qq{UPDATE pay.orders SET next_action = '{"type": "qr_code", "qr_code": "https://qr.example/k1"}' WHERE id = $k1});
$r = create('K-1', gateway => 'gdead', headers => { 'Idempotency-Key' => 'key-k1' });
is("$r->{status} $r->{json}{id} $r->{json}{next_action}{type}", "201 $k1 qr_code", 'a replay: the same order, with its answer');
is(q1("SELECT count(*) FROM pay.outbox WHERE order_id = $k1"), 1, 'a replay queues nothing new');

# ---------------------------------------------------------------------------
# GET /api/v1/payments/{id}: another merchant's payment is a missing one
$r = api('GET', "/api/v1/payments/$n1", id => $n1);
is($r->{status}, 200, 'GET a payment: 200');
is($r->{json}{next_action}{url}, 'https://psp.example/approve/1', 'it shows next_action');
my $other = api('GET', "/api/v1/payments/$n1", id => $n1, merchant => 'shopb');
my $missing = api('GET', '/api/v1/payments/999999', id => '999999', merchant => 'shopb');
is($other->{status}, 404, "another merchant's payment: 404");
is($other->{content}, $missing->{content}, 'exactly as a payment that does not exist');
is($other->{json}{error}{code}, 'not_found', 'code not_found');

# ---------------------------------------------------------------------------
# GET /api/v1/payments: newest first, keyset pages, filters
q1("SELECT pay.create_order('shopa', 'L-$_', 100 * $_, 'USD')") for 1 .. 5;    # one transaction each: 5 times
q1("SELECT pay.create_order('shopb', 'LB-' || i, 100, 'USD') FROM generate_series(1, 3) i");
my @all = split /\n/, q1("SELECT id FROM pay.orders WHERE merchant_id = pay._merchant_id('shopa') ORDER BY id DESC");
my (@seen, $pages, $after);
do
{
	$r = api('GET', '/api/v1/payments', query => { limit => '3', defined $after ? (after => $after) : () });
	is($r->{status}, 200, 'a page: 200') unless $pages;
	push @seen, map { $_->{id} } @{ $r->{json}{data} };
	$after = $r->{json}{next};
	$pages++;
} while (defined $after && $pages < 20);
is(join(',', @seen), join(',', @all), "every payment of the merchant once, newest first, over $pages pages of 3");
ok($pages >= 3, 'more than one page');
ok(exists $r->{json}{next} && !defined $r->{json}{next}, 'the last page: next is null');
$r = api('GET', '/api/v1/payments', query => { status => 'failed' });
is(join(',', map { "$_->{merchant_order_no}:$_->{status}" } @{ $r->{json}{data} }), 'F-1:failed', 'filter by status');
$r = api('GET', '/api/v1/payments', merchant => 'shopb');
is(scalar @{ $r->{json}{data} }, 3, "a merchant lists only its own payments");
my $mid = q1("SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM pay.orders WHERE merchant_order_no = 'L-3'");
$r = api('GET', '/api/v1/payments', query => { created_from => $mid, limit => '100' });
is(join(',', map { $_->{merchant_order_no} } @{ $r->{json}{data} }), 'L-5,L-4,L-3', 'created_from (inclusive)');
$r = api('GET', '/api/v1/payments', query => { created_from => $mid, created_to => '2999-01-01T00:00:00+01:00', status => 'pending' });
is(scalar @{ $r->{json}{data} }, 3, 'created_to and status together');
is_error(api('GET', '/api/v1/payments', query => { limit => '0' }), 400, 'invalid_request', '22023', 'limit', 'limit 0');
is_error(api('GET', '/api/v1/payments', query => { limit => '101' }), 400, 'invalid_request', '22023', 'limit', 'limit 101');
is_error(api('GET', '/api/v1/payments', query => { after => 'abc' }), 400, 'invalid_request', '22023', 'after', 'a bad cursor');
is_error(api('GET', '/api/v1/payments', query => { created_to => '2026-13-01' }), 400, 'invalid_request', '22023',
	'created_to', 'not RFC 3339');
is_error(api('GET', '/api/v1/payments', query => { colour => 'red' }), 400, 'invalid_request', '22023', 'colour',
	'an unknown parameter');

# ---------------------------------------------------------------------------
# refunds
my $paid = q1("SELECT id FROM pay.create_order('shopa', 'P-1', 1000, 'USD', gateway => 'gdead')");
q1("SELECT pay.mark_paid($paid, 'txn-p1', 1000, 'USD')");
my $before = q1($counts);
$r = api('POST', "/api/v1/payments/$paid/refunds", id => $paid, body => { amount => 300, reason => 'damaged' },
	headers => { 'Idempotency-Key' => 'rf-1' });
is($r->{status}, 201, 'a refund: 201');
my $refund = $r->{json}{id};
is("$r->{json}{payment_id} $r->{json}{amount} $r->{json}{currency} $r->{json}{reason}", "$paid 300 USD damaged",
	'the refund as the API shows it');
is(q1("SELECT count(*) FROM pay.outbox WHERE order_id = $paid AND operation = 'refund'"), 1,
	'the PSP refund is queued');
$r = api('POST', "/api/v1/payments/$paid/refunds", id => $paid, body => { amount => 300, reason => 'damaged' },
	headers => { 'Idempotency-Key' => 'rf-1' });
is("$r->{status} $r->{json}{id}", "201 $refund", 'the same key again: the same refund');
is(q1("SELECT count(*) FROM pay.refunds WHERE order_id = $paid"), 1, 'refunded once');
$before = q1($counts);
is_error(api('POST', "/api/v1/payments/$paid/refunds", id => $paid, body => { amount => 200 },
		headers => { 'Idempotency-Key' => 'rf-1' }), 422, 'idempotency_conflict', 'PY002', undef, 'the key with another amount');
is_error(api('POST', "/api/v1/payments/$paid/refunds", id => $paid, body => { amount => 800 },
		headers => { 'Idempotency-Key' => 'rf-2' }), 422, 'refund_exceeds_paid', 'PY005', undef, 'past the refundable amount');
is_error(api('POST', "/api/v1/payments/$paid/refunds", id => $paid, body => { amount => 100 }),
	400, 'invalid_request', '22023', 'idempotency_key', 'without an Idempotency-Key');
is_error(api('POST', "/api/v1/payments/$paid/refunds", id => $paid, body => { amount => '1' },
		headers => { 'Idempotency-Key' => 'rf-3' }), 400, 'invalid_request', '22023', 'amount', 'amount not a number');
is_error(api('POST', "/api/v1/payments/$d1/refunds", id => $d1, body => { amount => 100 },
		headers => { 'Idempotency-Key' => 'rf-4' }), 409, 'illegal_transition', 'PY001', undef, 'a pending order');
$r = api('POST', "/api/v1/payments/$paid/refunds", id => $paid, body => { amount => 100 },
	headers => { 'Idempotency-Key' => 'rf-5' }, merchant => 'shopb');
is($r->{status}, 404, "refunding another merchant's payment: 404");
is(q1($counts), $before, 'nothing written by the refused refunds');

$r = api('GET', "/api/v1/refunds/$refund", id => $refund);
is("$r->{status} $r->{json}{id} $r->{json}{amount}", "200 $refund 300", 'GET a refund: 200');
$other = api('GET', "/api/v1/refunds/$refund", id => $refund, merchant => 'shopb');
$missing = api('GET', '/api/v1/refunds/999999', id => '999999', merchant => 'shopb');
is($other->{status}, 404, "another merchant's refund: 404");
is($other->{content}, $missing->{content}, 'exactly as a refund that does not exist');

# ---------------------------------------------------------------------------
# cancel, ship, complete
$r = api('POST', "/api/v1/payments/$d1/cancel", id => $d1, merchant => 'shopb', body => { reason => 'no' });
is($r->{status}, 404, "cancelling another merchant's payment: 404");
is(q1("SELECT status FROM pay.orders WHERE id = $d1"), 'pending', 'it is not cancelled');
$r = api('POST', "/api/v1/payments/$d1/cancel", id => $d1, body => { reason => 'out of stock' });
is("$r->{status} $r->{json}{status}", '200 cancelled', 'cancel: 200, cancelled');
$before = q1($counts);
is_error(api('POST', "/api/v1/payments/$d1/ship", id => $d1), 409, 'illegal_transition', 'PY001', undef,
	'shipping a cancelled order');
is(q1("SELECT status FROM pay.orders WHERE id = $d1"), 'cancelled', 'still cancelled');
$r = api('POST', "/api/v1/payments/$paid/ship", id => $paid);
is("$r->{status} $r->{json}{status}", '200 shipped', 'ship: 200, shipped');
$r = api('POST', "/api/v1/payments/$paid/complete", id => $paid);
is("$r->{status} $r->{json}{status}", '200 completed', 'complete: 200, completed');
is_error(api('POST', "/api/v1/payments/$paid/ship", id => $paid, body => { reason => 'x' }), 400, 'invalid_request',
	'22023', 'reason', 'ship takes no reason');

# ---------------------------------------------------------------------------
# two-phase: create with capture, then capture (all or part) or void
$before = q1($counts);
is_error(api('POST', '/api/v1/payments', body => { merchant_order_no => 'C-bad', amount => 1000, currency => 'USD',
	capture => 'later' }), 422, 'invalid_capture', undef, 'capture', 'capture neither automatic nor manual');
is_error(api('POST', '/api/v1/payments', body => { merchant_order_no => 'C-num', amount => 1000, currency => 'USD',
	capture => 1 }), 422, 'invalid_capture', undef, 'capture', 'capture not a string');
is_error(api('POST', '/api/v1/payments', body => { merchant_order_no => 'C-gen', amount => 1000, currency => 'USD',
	gateway => 'gdead', capture => 'manual' }), 422, 'not_supported', '0A000', undef,
	'manual capture at a gateway that captures as the buyer pays');
is(q1($counts), $before, 'nothing written by the refused creates');
$r = api('POST', '/api/v1/payments', body => { merchant_order_no => 'C-1', amount => 1000, currency => 'USD',
	capture => 'manual' });
is("$r->{status} $r->{json}{capture} $r->{json}{status}", '201 manual pending', 'capture manual: 201, the order shows it');
my $c1 = $r->{json}{id};
$r = create('C-0');
is("$r->{status} $r->{json}{capture}", '201 automatic', 'without capture: automatic');
is_error(api('POST', "/api/v1/payments/$c1/capture", id => $c1), 409, 'illegal_transition', 'PY001', undef,
	'capturing a pending order');
q1("SELECT pay.mark_paid($c1, 'txn-c1', 1000, 'USD')");
is(q1("SELECT status FROM pay.orders WHERE id = $c1"), 'authorized', 'the payment confirmed: authorized');
$before = q1($counts);
is_error(api('POST', "/api/v1/payments/$c1/capture", id => $c1, body => { amount => 1001 }), 422,
	'capture_exceeds_authorized', 'PY005', undef, 'a capture above the authorization');
is_error(api('POST', "/api/v1/payments/$c1/capture", id => $c1, body => { amount => '500' }), 400, 'invalid_request',
	'22023', 'amount', 'a capture amount that is not a number');
is_error(api('POST', "/api/v1/payments/$c1/capture", id => $c1, body => { amount => 0 }), 400, 'invalid_request',
	'22023', 'amount', 'a capture of nothing');
is_error(api('POST', "/api/v1/payments/$c1/capture", id => $c1, body => { reason => 'x' }), 400, 'invalid_request',
	'22023', 'reason', 'capture takes no reason');
$other = api('POST', "/api/v1/payments/$c1/capture", id => $c1, merchant => 'shopb');
$missing = api('POST', '/api/v1/payments/999999/capture', id => '999999', merchant => 'shopb');
is($other->{status}, 404, "capturing another merchant's payment: 404");
is($other->{content}, $missing->{content}, 'exactly as a payment that does not exist');
is(api('POST', "/api/v1/payments/$c1/void", id => $c1, merchant => 'shopb')->{status}, 404,
	"voiding another merchant's payment: 404");
is(q1($counts), $before, 'nothing written by the refused captures and voids');
$r = api('POST', "/api/v1/payments/$c1/capture", id => $c1, body => { amount => 600 });
is("$r->{status} $r->{json}{status} $r->{json}{captured_amount} $r->{json}{amount}", '200 paid 600 1000',
	'capture of 600: 200, paid with 600 captured of 1000');
is(q1("SELECT sum(e.amount) FROM pay.postings p JOIN pay.entries e ON e.posting_id = p.id
        JOIN pay.accounts a ON a.id = e.account_id AND a.code LIKE 'merchant:%' WHERE p.order_id = $c1"), '600',
	'the ledger books what was captured');
is_error(api('POST', "/api/v1/payments/$c1/capture", id => $c1), 409, 'illegal_transition', 'PY001', undef,
	'capturing a paid order');
is_error(api('POST', "/api/v1/payments/$c1/void", id => $c1), 409, 'illegal_transition', 'PY001', undef,
	'voiding a paid order');
my $c2 = create('C-2', body => { merchant_order_no => 'C-2', amount => 700, currency => 'USD', capture => 'manual' })
  ->{json}{id};
q1("SELECT pay.mark_paid($c2, 'txn-c2', 700, 'USD')");
is_error(api('POST', "/api/v1/payments/$c2/void", id => $c2, body => { amount => 1 }), 400, 'invalid_request',
	'22023', 'amount', 'void takes no amount');
$r = api('POST', "/api/v1/payments/$c2/void", id => $c2);
is("$r->{status} $r->{json}{status} " . ($r->{json}{captured_amount} // 'null'), '200 cancelled null',
	'void: 200, cancelled, nothing captured');
$r = api('POST', "/api/v1/payments/$c2/capture", id => $c2);
is($r->{status}, 409, 'a voided order cannot be captured');
$r = api('POST', "/api/v1/payments/$c1/refunds", id => $c1, body => { amount => 601 },
	headers => { 'Idempotency-Key' => 'rf-c1' });
is("$r->{status} $r->{json}{error}{code}", '422 refund_exceeds_paid', 'a refund is bounded by what was captured');

# ---------------------------------------------------------------------------
# the other error classes, each writing nothing
$before = q1($counts);
is_error(create('E-1', signature => 'ab' x 32), 401, 'unauthorized', 'PY010', undef, 'a bad signature');
is_error(create('E-2', timestamp => int(time) - 3600), 401, 'unauthorized', 'PY011', undef, 'a stale timestamp');
$r = api('GET', "/api/v1/payments/$n1", id => $n1, nonce => 'nonce-used-twice');
is($r->{status}, 200, 'a nonce used once');
is_error(api('GET', "/api/v1/payments/$n1", id => $n1, nonce => 'nonce-used-twice'), 401, 'unauthorized', 'PY012', undef,
	'the nonce again');
is_error(create('E-4', amount => -5), 400, 'invalid_request', '22023', 'amount', 'a negative amount');
is_error(api('POST', '/api/v1/payments', raw => '{"amount": ', body => {}), 400, 'invalid_request', '22P02', 'body',
	'a body that is not JSON');
is_error(api('GET', '/api/v1/payments/12x', id => '12x'), 400, 'invalid_request', '22023', 'id', 'a bad id');
is(q1($counts), $before, 'nothing written by the refused requests');

q1("SELECT pay.set_rate_limit('shopa', 0.001, 1)");
is(create('R-1')->{status}, 201, 'within the rate limit');
$before = q1($counts);
$r = create('R-2');
is_error($r, 429, 'rate_limited', 'PY029', undef, 'beyond the rate limit');
ok(($r->{headers}{'retry-after'} // 0) >= 1, 'with Retry-After');
is(q1($counts), $before, 'nothing written beyond the rate limit');

$r = $http->request('GET', "$base/api/v1/payments/1/refunds");
is("$r->{status} $r->{headers}{allow}", '405 POST', 'GET on the refunds route: 405, Allow POST');
$r = $http->request('DELETE', "$base/api/v1/payments");
is("$r->{status} $r->{headers}{allow}", '405 GET, HEAD, POST', 'DELETE on payments: 405');

$proxy->signal('TERM');
$proxy->finish;
$node->stop;
done_testing();
