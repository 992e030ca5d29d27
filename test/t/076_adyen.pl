# Adyen end to end over real HTTP: the dispatcher sends Checkout API
# requests to the fake PSP (test/fake_psp/adyen.py, its own crypto), which
# answers and then posts its standard notifications, batched and signed per
# item, through pay-proxy to pay.handle_callback.  A payment, paid and
# refunded; a manual-capture payment authorized, partly captured and
# refunded; one authorized and voided; refusals (resultCode Refused, a
# 403); a batch of two items applied once each and replayed as a
# duplicate; a batch with one forged item refused whole; bad notifications
# recorded and refused; the janitor leaving Adyen alone (no query).
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
my $json = JSON::PP->new->canonical;
my $cfg = $json->decode(slurp_file("$fake_dir/config.json"));
my $ady = $cfg->{adyen};
my $http = HTTP::Tiny->new(timeout => 30);

# --- the fake PSP -------------------------------------------------------------
my $psp = start_fake_psp();
my $fake = $psp->{handle};
my $url = $psp->{url};
sub control { return $psp->{control}->(@_) }

# --- the cluster and pay-proxy ----------------------------------------------------
my $node = pay_node('adyen', q{
pay.psp_retry_base = '50ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
});
my $pay_proxy = start_pay_proxy($node);
my $proxy = $pay_proxy->{handle};
my $proxy_url = $pay_proxy->{url};

sub psql { $node->safe_psql('postgres', $_[0]) }
sub wait_sql { my ($sql, $what) = @_; ok(wait_for_sql($node, $sql, 30), $what) or diag(psql(
	q{SELECT string_agg(format('%s %s %s %s', id, verdict, coalesce(reason, ''), coalesce(outcome, '')), E'\n' ORDER BY id) FROM pay.callbacks})
	. "\n" . psql(q{SELECT string_agg(format('%s %s %s %s', outbox_id, operation, verdict, reason), E'\n' ORDER BY id) FROM pay.psp_answers})) }

psql(qq{
SELECT pay.create_gateway('adyen_main', 'adyen', '$url', '{"merchant_account": "$ady->{merchant_account}"}');
SELECT pay.set_secret('gateway:adyen_main', 'api_key', '$ady->{api_key}');
SELECT pay.set_secret('gateway:adyen_main', 'hmac_key', '$ady->{hmac_key}');
SELECT pay.create_merchant('acme', 'ACME', '$url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
});
# the fake posts its notifications to pay-proxy, for gateway adyen_main
control('POST', '/control/outbox', { provider => 'adyen', target => $proxy_url, gateway => 'adyen_main',
		delay_ms => 20, retry_ms => [200, 400, 800, 1600], batch_max => 10, paused => JSON::PP::false });

my $n = 0;
sub order
{
	my ($amount, $capture) = @_;
	$n++;
	return psql("SELECT id FROM pay.create_order('acme', 'AD-$n', $amount, 'EUR', gateway => 'adyen_main'"
		  . ($capture ? ", capture => 'manual'" : '') . ')');
}

# the fake's recorded requests to a path
sub requests
{
	my ($path) = @_;
	return @{ control('GET', "/control/requests?path=$path")->{requests} };
}

sub header { my ($r, $name) = @_; my ($v) = map { $r->{headers}{$_} } grep { lc $_ eq lc $name } keys %{ $r->{headers} }; $v }

sub fake_payment
{
	my ($psp) = @_;
	return control('GET', '/control/state')->{adyen}{payments}{$psp};
}

# --- 1. a payment: created at Adyen, paid by its notification, refunded ---------
my $a = order(2500);
wait_sql("SELECT status = 'paid' FROM pay.orders WHERE id = $a", 'automatic capture: paid by the AUTHORISATION notification');
my ($create) = grep { $json->decode($_->{body})->{reference} eq $a } requests('/v71/payments');
ok($create, 'the fake received POST /v71/payments');
my $cbody = $json->decode($create->{body});
is(header($create, 'X-API-Key'), $ady->{api_key}, 'X-API-Key is the gateway api_key');
is(header($create, 'Idempotency-Key'), "psp_${a}_create_payment", 'Idempotency-Key is the outbox key');
is($json->encode([$cbody->{amount}, $cbody->{merchantAccount}, $cbody->{additionalData}]),
	$json->encode([{ value => 2500, currency => 'EUR' }, $ady->{merchant_account}, undef]),
	'amount in minor units, merchantAccount, no manual capture');
my $psp_a = $json->decode($create->{response})->{pspReference};
is(psql("SELECT psp_txn_id FROM pay.orders WHERE id = $a"), $psp_a, 'psp_txn_id is the pspReference');
is(psql("SELECT verdict || ' ' || reason FROM pay.psp_answers WHERE order_id = $a AND operation = 'create_payment'"),
	'applied no next action', 'the create answer is applied');
is(psql("SELECT verdict || ' ' || event_type || ' ' || http_status FROM pay.callbacks WHERE order_id = $a"),
	'accepted AUTHORISATION 200', 'the notification is accepted');
my $deliveries = control('GET', '/control/outbox')->{deliveries};
my ($del_a) = grep { grep { $_ eq $a } @{ $_->{refs} } } @$deliveries;
ok($del_a && $del_a->{accepted}, 'the fake counts the delivery accepted ([accepted])');

my $ra = psql("SELECT pay.refund($a, 1000, 'damaged')");
wait_sql("SELECT psp_status = 'succeeded' AND psp_refund_id IS NOT NULL FROM pay.refunds WHERE id = $ra",
	'refund confirmed by the REFUND notification');
my ($refund_req) = requests("/v71/payments/$psp_a/refunds");
is($json->decode($refund_req->{body})->{amount}{value}, 1000, 'the refund request names its amount');
is(header($refund_req, 'Idempotency-Key'), "psp_${a}_refund_$ra", 'the refund request has its key');
like(psql("SELECT outcome FROM pay.callbacks WHERE event_type = 'REFUND' AND order_id = $a"),
	qr/refund $ra succeeded/, 'the REFUND notification names the refund');
is(psql("SELECT count(*) FROM pay.refunds WHERE order_id = $a"), 1, 'booked once: the notification confirmed, not booked again');
is(psql("SELECT refunded_amount FROM pay.orders WHERE id = $a"), 1000, 'refunded 1000');

# --- 2. manual capture: authorized, partly captured, refunded ---------------------
my $m = order(5000, 1);
wait_sql("SELECT status = 'authorized' FROM pay.orders WHERE id = $m", 'manual capture: authorized by AUTHORISATION');
my ($mcreate) = grep { $json->decode($_->{body})->{reference} eq $m } requests('/v71/payments');
is($json->decode($mcreate->{body})->{additionalData}{manualCapture}, 'true', 'the create asks for manual capture');
my $psp_m = psql("SELECT psp_txn_id FROM pay.orders WHERE id = $m");
is(psql("SELECT status || ' ' || captured_amount FROM pay.capture($m, 4200)"), 'paid 4200', 'pay.capture: paid 4200 at once');
wait_sql("SELECT EXISTS (SELECT 1 FROM pay.callbacks WHERE order_id = $m AND event_type = 'CAPTURE')",
	'the CAPTURE notification arrives');
my ($capture_req) = requests("/v71/payments/$psp_m/captures");
is($json->decode($capture_req->{body})->{amount}{value}, 4200, 'the capture request is partial');
is(psql("SELECT verdict || ' ' || reason FROM pay.psp_answers WHERE order_id = $m AND operation = 'capture'"),
	'applied capture received', 'the capture answer: received');
is(psql("SELECT verdict || ' ' || outcome FROM pay.callbacks WHERE order_id = $m AND event_type = 'CAPTURE'"),
	'accepted already captured by this transaction', 'the CAPTURE confirms 4200');
is(fake_payment($psp_m)->{captured}, 4200, 'Adyen captured 4200');
is(psql("SELECT balance FROM pay.balance('merchant:acme:EUR') balance"), 2500 - 1000 + 4200, 'the ledger booked what was captured');
my $rm = psql("SELECT pay.refund($m, 4200)");
wait_sql("SELECT psp_status = 'succeeded' FROM pay.refunds WHERE id = $rm", 'the captured amount refunded and confirmed');
is(psql("SELECT status FROM pay.orders WHERE id = $m"), 'refunded', 'refunded in full: what was captured');

# --- 3. authorized, then voided ---------------------------------------------------
my $v = order(3000, 1);
wait_sql("SELECT status = 'authorized' FROM pay.orders WHERE id = $v", 'authorized');
my $psp_v = psql("SELECT psp_txn_id FROM pay.orders WHERE id = $v");
is(psql("SELECT status FROM pay.void($v)"), 'cancelled', 'pay.void: cancelled');
wait_sql("SELECT EXISTS (SELECT 1 FROM pay.callbacks WHERE order_id = $v AND event_type = 'CANCELLATION')",
	'the CANCELLATION notification arrives');
is(psql("SELECT outcome FROM pay.callbacks WHERE order_id = $v AND event_type = 'CANCELLATION'"),
	'close ignored: order is cancelled', 'it confirms the void');
ok(scalar(requests("/v71/payments/$psp_v/cancels")), 'the fake received the cancel');
ok(fake_payment($psp_v)->{cancelled}, 'Adyen cancelled the authorization');
is(psql("SELECT count(*) FROM pay.anomalies"), 0, 'no anomaly so far');

# --- 4. refusals: resultCode Refused, and a 403 -----------------------------------
psql(q{UPDATE pay.gateways SET options = options || '{"payment_method": {"type": "scheme", "holderName": "NOT_ENOUGH_BALANCE"}}'
        WHERE name = 'adyen_main'});
my $f = order(700);
wait_sql("SELECT status = 'failed' FROM pay.orders WHERE id = $f", 'resultCode Refused: the order failed');
is(psql("SELECT failure_reason FROM pay.orders WHERE id = $f"), 'Not Enough Balance', "with Adyen's refusalReason");
wait_sql("SELECT EXISTS (SELECT 1 FROM pay.callbacks WHERE order_id = $f)", 'its AUTHORISATION false arrives');
is(psql("SELECT verdict || ' ' || outcome FROM pay.callbacks WHERE order_id = $f"), 'accepted failure ignored: order is failed',
	'the failed AUTHORISATION changes nothing more');
psql(q{UPDATE pay.gateways SET options = options - 'payment_method' || '{"merchant_account": "SomeoneElse"}'
        WHERE name = 'adyen_main'});
my $f2 = order(800);
wait_sql("SELECT status = 'failed' FROM pay.orders WHERE id = $f2", 'a 403: the order failed');
is(psql("SELECT failure_reason FROM pay.orders WHERE id = $f2"), 'Invalid Merchant Account', "with Adyen's message");
psql(qq{UPDATE pay.gateways SET options = options || '{"merchant_account": "$ady->{merchant_account}"}' WHERE name = 'adyen_main'});

# --- 5. a batch of two items: each applied once; the batch replayed: a duplicate ---
control('POST', '/control/outbox', { provider => 'adyen', paused => JSON::PP::true });
my $b1 = order(1100);
my $b2 = order(1200);
wait_sql("SELECT count(*) = 2 FROM pay.orders WHERE id IN ($b1, $b2) AND psp_txn_id IS NOT NULL", 'both created at Adyen');
is(psql("SELECT count(*) FROM pay.callbacks WHERE order_id IN ($b1, $b2)"), 0, 'no notification yet (paused)');
control('POST', '/control/outbox', { provider => 'adyen', paused => JSON::PP::false });
wait_sql("SELECT count(*) = 2 FROM pay.orders WHERE id IN ($b1, $b2) AND status = 'paid'", 'both paid');
my $batch_cb = psql("SELECT callback_id FROM pay.callback_events e JOIN pay.orders o ON e.event_id LIKE o.psp_txn_id || ':%'
                      WHERE o.id = $b1");
is(psql("SELECT count(DISTINCT callback_id) || ' ' || count(*) FROM pay.callback_events e JOIN pay.orders o
          ON e.event_id = o.psp_txn_id || ':AUTHORISATION:true' WHERE o.id IN ($b1, $b2)"), '1 2',
	'one request, two events: each recorded against the one callback');
like(psql("SELECT verdict || ' ' || event_type || ' | ' || outcome FROM pay.callbacks WHERE id = $batch_cb"),
	qr/^accepted AUTHORISATION, AUTHORISATION \| \w+:AUTHORISATION:true: paid; \w+:AUTHORISATION:true: paid$/,
	'the callback row lists both events and outcomes');
is(psql("SELECT count(*) FROM pay.postings WHERE order_id IN ($b1, $b2)"), 2, 'each booked once');
my ($batch_del) = grep { grep { $_ eq $b1 } @{ $_->{refs} } } @{ control('GET', '/control/outbox')->{deliveries} };
is(scalar(@{ $batch_del->{refs} }), 2, 'the fake sent them in one request');
my $sent = $batch_del->{attempts}[-1]{request};
my $state_sql = q{SELECT format('%s %s %s %s %s', (SELECT count(*) FROM pay.order_events), (SELECT count(*) FROM pay.postings),
  (SELECT count(*) FROM pay.refunds), (SELECT count(*) FROM pay.outbox), (SELECT count(*) FROM pay.anomalies))};
my $before = psql($state_sql);
my $replay = $http->post("$proxy_url/callbacks/adyen_main", { content => $sent->{body}, headers => { 'Content-Type' => 'application/json' } });
is("$replay->{status} $replay->{content}", '200 [accepted]', 'the same batch again: [accepted]');
is(psql("SELECT verdict FROM pay.callbacks ORDER BY id DESC LIMIT 1"), 'duplicate', 'recorded as a duplicate');
is(psql($state_sql), $before, 'and nothing changed');

# --- 6. a batch with one forged item: refused whole ------------------------------
control('POST', '/control/outbox', { provider => 'adyen', paused => JSON::PP::true });
my $c = order(1300);
wait_sql("SELECT psp_txn_id IS NOT NULL FROM pay.orders WHERE id = $c", 'created at Adyen, notification held');
$before = psql($state_sql);
my $cb_before = psql('SELECT count(*) FROM pay.callbacks');
my $res = control('POST', '/control/send', { provider => 'adyen', gateway => 'adyen_main', target => $proxy_url,
		order_id => $c, amount => 1300, currency => 'EUR', event => 'paid', variant => 'bad_item' })->{results}[0];
is($res->{status}, 401, 'one item with a bad hmacSignature: 401, Adyen sends the batch again');
like($res->{body}, qr/^\[rejected\]/, 'not [accepted]');
is(psql("SELECT verdict || ' ' || reason_code || ' ' || reason FROM pay.callbacks ORDER BY id DESC LIMIT 1"),
	'rejected PY010 the hmacSignature of notificationItems[1] does not verify', 'recorded, naming the item');
is(psql("SELECT status FROM pay.orders WHERE id = $c"), 'pending', 'its good item was not applied');
is(psql("SELECT count(*) FROM pay.callback_events WHERE callback_id = (SELECT max(id) FROM pay.callbacks)"), 0,
	'no event id used up');
is(psql($state_sql), $before, 'nothing else changed');

# --- 7. bad notifications: recorded and refused like any others' ----------------
for my $case (['tampered', 401, 'PY010'], ['wrong_key', 401, 'PY010'], ['unsigned', 401, 'PY010'])
{
	my ($variant, $status, $code) = @$case;
	my $r = control('POST', '/control/send', { provider => 'adyen', gateway => 'adyen_main', target => $proxy_url,
			order_id => $c, amount => 1300, currency => 'EUR', event => 'paid', variant => $variant })->{results}[0];
	is($r->{status}, $status, "$variant: $status");
	is(psql("SELECT verdict || ' ' || reason_code FROM pay.callbacks ORDER BY id DESC LIMIT 1"), "rejected $code",
		"$variant: recorded as rejected");
}
for my $case (['not json', 'application/json', 400, '22P02'], ['{"live": "false"}', 'application/json', 400, '22023'],
	['{"live": "false", "notificationItems": []}', 'application/json', 400, '22023'],
	['{"live": "false", "notificationItems": [{"NotificationRequestItem": {}}]}', 'text/html', 400, '22023'])
{
	my ($body, $type, $status, $code) = @$case;
	my $r = $http->post("$proxy_url/callbacks/adyen_main", { content => $body, headers => { 'Content-Type' => $type } });
	is("$r->{status} " . psql("SELECT verdict || ' ' || reason_code FROM pay.callbacks ORDER BY id DESC LIMIT 1"),
		"$status rejected $code", "malformed ($body, $type): $status, recorded");
}
is(psql($state_sql), $before, 'none of them changed anything');
is(psql('SELECT count(*) FROM pay.callbacks') - $cb_before, 8, 'each one recorded');

# --- 8. no query at Adyen: the janitor leaves its pending order alone --------------
sleep 1;
is(psql("SELECT pay.run_janitor('1 second')"), 0, 'the janitor queues no query for Adyen');
is(psql("SELECT count(*) FROM pay.outbox WHERE order_id = $c AND operation = 'query'"), 0, 'none');
control('POST', '/control/outbox', { provider => 'adyen', paused => JSON::PP::false });
wait_sql("SELECT status = 'paid' FROM pay.orders WHERE id = $c", 'the held notification, sent again, pays it');

is(psql(q{SELECT count(*) FROM pay.psp_answers WHERE verdict = 'rejected'}), 0, 'no answer was rejected');
is(psql(q{SELECT count(*) FROM pay.order_ledger_mismatches}), 0, 'every order agrees with its ledger');
is(psql(q{SELECT count(*) FROM pay.ledger_problems}), 0, 'the books are sound');

$proxy->kill_kill;
$fake->signal('TERM');
$fake->finish;
done_testing();
