# Two-phase payments at Stripe end to end, over real HTTP: the dispatcher
# sends to the fake PSP, whose webhooks (to the account's endpoint: the
# fake's outbox, targeting pay-proxy) come back signed through
# POST /callbacks/st.  Authorize, capture part, refund within what was
# captured; authorize and void; a capture above the authorization refused
# before anything is sent; an expired authorization voided here and
# cancelled there; a capture and a cancel made on Stripe's side; an
# authorization whose webhook was lost, found by the janitor's query.
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
my $http = HTTP::Tiny->new(timeout => 30);

# --- the fake PSP --------------------------------------------------------------
my $psp = start_fake_psp();
my $fake = $psp->{handle};
my $url = $psp->{url};
sub control { return $psp->{control}->(@_) }

# --- pay, and pay-proxy in front of it ---------------------------------------------
my $node = pay_node('stripe2p', q{
pay.psp_retry_base = '50ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
});
my $pay_proxy = start_pay_proxy($node);
my $proxy = $pay_proxy->{handle};
my $proxy_url = $pay_proxy->{url};

$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('st', 'stripe', '$url');
SELECT pay.set_secret('gateway:st', 'api_key', '$cfg->{stripe}{api_key}');
SELECT pay.set_secret('gateway:st', 'webhook_secret', '$cfg->{stripe}{webhook_secret}');
SELECT pay.create_merchant('acme', 'ACME', '$url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
});
# the account's webhook endpoint: what the API calls cause comes to pay-proxy
control('POST', '/control/outbox', { provider => 'stripe', target => $proxy_url, gateway => 'st',
	delay_ms => 0, retry_ms => [100, 200, 400] });

sub psql { $node->safe_psql('postgres', $_[0]) }
# the error of a statement expected to fail ('' if it did not)
sub psql_error
{
	my ($stdout, $stderr);
	$node->psql('postgres', "\\set VERBOSITY verbose\n$_[0]", stdout => \$stdout, stderr => \$stderr);
	return $stderr // '';
}
sub quiet
{
	ok(wait_for_sql($node, q{SELECT NOT EXISTS (SELECT 1 FROM pay.outbox
	                          WHERE kind = 'psp_request' AND state IN ('pending', 'in_flight'))}, 30), $_[0]);
}
sub webhooks_delivered
{
	is(control('GET', '/control/outbox/wait?timeout_s=20')->{idle}, JSON::PP::true, $_[0]);
}
sub order
{
	psql("SELECT id FROM pay.create_order('acme', '$_[0]', $_[1], 'USD', gateway => 'st', capture => 'manual')");
}
# the buyer pays at Stripe (through the fake's control API, as a buyer's
# confirmation): the intent waits for its capture; the webhook goes to pay
sub buyer_pays
{
	my ($id, $amount, $event) = @_;
	my $out = control('POST', '/control/send', { provider => 'stripe', gateway => 'st', order_id => "$id",
		amount => $amount, currency => 'USD', target => $proxy_url, event => $event // 'paid' });
	return $out->{results}[0]{status} . ' ' . $json->decode($out->{requests}[0]{body})->{type};
}
sub intent
{
	my ($id) = @_;
	my $st = control('GET', '/control/state')->{stripe};
	return $st->{pis}{ $st->{by_order}{$id}[-1] };
}
sub status { psql("SELECT status || ' ' || coalesce(captured_amount::text, '-') FROM pay.orders WHERE id = $_[0]") }
sub booked { psql("SELECT count(*) FROM pay.postings WHERE order_id = $_[0]") }
sub last_outcome
{
	psql("SELECT event_type || ': ' || outcome FROM pay.callbacks WHERE order_id = $_[0] AND verdict = 'accepted' ORDER BY id DESC LIMIT 1");
}

# --- authorize, capture part of it, refund within what was captured ------------------
my $a = order('A', 5000);
quiet('the create request is answered');
is(intent($a)->{capture_method}, 'manual', 'Stripe was asked for capture_method=manual');
is(buyer_pays($a, 5000), '200 payment_intent.amount_capturable_updated', 'the buyer pays: Stripe authorizes');
is(intent($a)->{status}, 'requires_capture', 'the intent waits for its capture');
is(status($a), 'authorized -', 'the order is authorized');
is(booked($a), '0', 'nothing is booked for an authorization');
is(buyer_pays($a, 5000, 'authorized'), '200 payment_intent.amount_capturable_updated', 'the authorization again');
is(last_outcome($a), 'payment_intent.amount_capturable_updated: already authorized by this transaction',
	'a repeated authorization changes nothing');

my $outbox_before = psql('SELECT count(*) FROM pay.outbox');
like(psql_error("SELECT pay.capture($a, 5001)"), qr/PY005/, 'capturing more than authorized: PY005');
is(psql('SELECT count(*) FROM pay.outbox'), $outbox_before, '... and nothing is queued for Stripe');
is(status($a), 'authorized -', '... and the order is still authorized');

is(psql("SELECT status || ' ' || captured_amount FROM pay.capture($a, 4200)"), 'paid 4200', 'a capture of 4200 of 5000');
is(psql("SELECT pay.balance('merchant:acme:USD')"), '4200', 'the ledger books what was captured');
quiet('the capture request is answered');
is(psql("SELECT state || ' ' || last_status || ' ' || (params->>'amount') FROM pay.outbox WHERE order_id = $a AND operation = 'capture'"),
	'done 200 4200', 'Stripe took the capture of 4200');
my $pi = intent($a);
is("$pi->{status} $pi->{amount} $pi->{amount_received} $pi->{amount_capturable}", 'succeeded 5000 4200 0',
	'at Stripe: 4200 received of 5000, the rest released');
webhooks_delivered('Stripe\'s payment_intent.succeeded reached pay');
is(last_outcome($a), 'payment_intent.succeeded: already captured by this transaction',
	'the succeeded webhook names what pay captured: acknowledged');
is(status($a), 'paid 4200', 'the order stays paid with 4200');

like(psql_error("SELECT pay.refund($a, 4201)"), qr/PY005/, 'a refund above what was captured: PY005');
my $r = psql("SELECT pay.refund($a, 4200, 'all of it')");
quiet('the refund request is answered');
is(psql("SELECT psp_status FROM pay.refunds WHERE id = $r"), 'succeeded', 'Stripe confirmed the refund of 4200');
is(intent($a)->{amount_refunded}, 4200, 'at Stripe: 4200 refunded');
webhooks_delivered('Stripe\'s charge.refunded reached pay');
is(last_outcome($a), 'charge.refunded: no new refund amount', 'the refund webhook books nothing twice');
is(psql("SELECT status FROM pay.orders WHERE id = $a"), 'refunded', 'the order is refunded: all it paid');
is(psql("SELECT pay.balance('merchant:acme:USD')"), '0', 'the merchant holds nothing of it');

# --- authorize, then void ----------------------------------------------------------------
my $b = order('B', 3000);
quiet('B: the create request is answered');
is(buyer_pays($b, 3000), '200 payment_intent.amount_capturable_updated', 'B: authorized at Stripe');
is(psql("SELECT status FROM pay.void($b)"), 'cancelled', 'B: voided');
quiet('B: the void request is answered');
is(psql("SELECT state || ' ' || last_status FROM pay.outbox WHERE order_id = $b AND operation = 'void'"), 'done 200',
	'B: Stripe took the cancel');
is(intent($b)->{status}, 'canceled', 'B: the intent is canceled at Stripe');
webhooks_delivered('B: Stripe\'s payment_intent.canceled reached pay');
is(last_outcome($b), 'payment_intent.canceled: close ignored: order is cancelled', 'B: the canceled webhook changes nothing');
is(booked($b), '0', 'B: nothing booked');
like(psql_error("SELECT pay.capture($b)"), qr/PY001/, 'B: a voided order cannot be captured');

# --- an authorization past its window: voided here, cancelled there ------------------------
my $c = order('C', 2500);
quiet('C: the create request is answered');
is(buyer_pays($c, 2500), '200 payment_intent.amount_capturable_updated', 'C: authorized at Stripe');
is(psql("SELECT authorization_expires_at - authorized_at FROM pay.orders WHERE id = $c"), '7 days',
	'C: the authorization lasts the gateway\'s window (7 days)');
is(psql("SELECT pay.expire_authorizations(now() + interval '7 days 1 second')"), '1', 'C: its authorization expires');
is(status($c), 'cancelled -', 'C: cancelled');
quiet('C: the void request is answered');
is(intent($c)->{status}, 'canceled', 'C: the cancel reached Stripe');
is(booked($c), '0', 'C: nothing booked');

# --- a capture and a cancel made on Stripe's side ------------------------------------------------
my $d = order('D', 4000);
quiet('D: the create request is answered');
is(buyer_pays($d, 4000), '200 payment_intent.amount_capturable_updated', 'D: authorized at Stripe');
is(buyer_pays($d, 3000, 'captured'), '200 payment_intent.succeeded', 'D: 3000 captured on Stripe\'s side');
is(status($d), 'paid 3000', 'D: paid with what Stripe captured');
is(last_outcome($d), 'payment_intent.succeeded: captured 3000', 'D: the callback says so');
is(psql("SELECT count(*) FROM pay.outbox WHERE order_id = $d AND operation = 'capture'"), '0',
	'D: no capture request is sent for a capture Stripe made');
is(psql("SELECT pay.balance('merchant:acme:USD')"), '3000', 'D: the ledger books 3000');

my $e = order('E', 1500);
quiet('E: the create request is answered');
is(buyer_pays($e, 1500), '200 payment_intent.amount_capturable_updated', 'E: authorized at Stripe');
is(buyer_pays($e, 1500, 'closed'), '200 payment_intent.canceled', 'E: canceled on Stripe\'s side');
is(status($e), 'cancelled -', 'E: cancelled');
is(psql("SELECT count(*) FROM pay.outbox WHERE order_id = $e AND operation = 'void'"), '0',
	'E: no void request is sent for a cancel Stripe made');

# --- an authorization whose webhook is lost: the janitor's query finds it ---------------------------
my $f = order('F', 2000);
quiet('F: the create request is answered');
control('POST', '/control/faults', { target => 'callback', path => '/callbacks/st', mode => 'drop', count => 1 });
my $out = control('POST', '/control/send', { provider => 'stripe', gateway => 'st', order_id => "$f",
	amount => 2000, currency => 'USD', target => $proxy_url });
ok($out->{results}[0]{dropped}, 'F: authorized at Stripe, its webhook lost');
is(status($f), 'pending -', 'F: pay has not heard of it');
sleep(1.1);
is(psql(q{SELECT pay.run_janitor('1 second')}), '1', 'F: the janitor queues a query');
quiet('F: the query is answered');
is(psql("SELECT o.status || ' ' || regexp_replace(e.cause, '[0-9]+', 'N') FROM pay.orders o
           JOIN pay.order_events e ON e.order_id = o.id WHERE o.id = $f ORDER BY e.id DESC LIMIT 1"),
	'authorized query N', 'F: the query found the intent waiting for its capture: authorized');
is(psql("SELECT status || ' ' || captured_amount FROM pay.capture($f)"), 'paid 2000', 'F: captured in full');
quiet('F: the capture request is answered');
webhooks_delivered('F: Stripe\'s payment_intent.succeeded reached pay');
is(last_outcome($f), 'payment_intent.succeeded: already captured by this transaction', 'F: acknowledged');

is(psql('SELECT count(*) FROM pay.anomalies'), '0', 'no anomaly anywhere');
is(psql('SELECT count(*) FROM pay.ledger_problems'), '0', 'the books are sound');
is(psql('SELECT count(*) FROM pay.order_ledger_mismatches'), '0', 'every order\'s ledger explains its money');
is(psql("SELECT count(*) FROM pay.callbacks WHERE verdict <> 'accepted'"), '0', 'every callback was accepted');

$proxy->kill_kill;
$fake->signal('TERM');
$fake->finish;
done_testing();
