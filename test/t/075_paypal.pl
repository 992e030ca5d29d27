# PayPal end to end over real HTTP(S): the dispatcher sends Orders API v2
# requests to the fake PSP (test/fake_psp/paypal.py, its own crypto) with an
# OAuth token it fetched once; the fake's signed webhooks come back through
# pay-proxy, verified with the certificate PAYPAL-CERT-URL names (fetched
# once, its chain checked).  Automatic capture: create, the buyer approves,
# the capture is queued and sent, paid, refunded.  Manual capture:
# authorize, a partial capture, paid with the captured amount, refunded;
# authorize and void.  Bad webhooks are recorded and refused; an expired
# token is replaced.
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
my $pp = $cfg->{paypal};

# One CA file for both: the fake's TLS certificate and PayPal's signing certificate.
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $ca = "$tmp/ca.pem";
open my $fh, '>', $ca or die;
print $fh slurp_file("$keys/tls_ca.pem"), slurp_file("$keys/paypal_ca.pem");
close $fh;
my $http = HTTP::Tiny->new(timeout => 30);

# --- the fake PSP, on HTTPS -------------------------------------------------
my ($fake_out, $fake_err) = ('', '');
my $fake = IPC::Run::start(['/usr/bin/python3', "$fake_dir/fake_psp.py", '--port', '0',
		'--tls-cert', "$keys/tls_server.pem", '--tls-key', "$keys/tls_server.key"],
	'>', \$fake_out, '2>', \$fake_err);
my $deadline = time + 30;
$fake->pump until $fake_out =~ /listening (\d+)/ || time > $deadline;
my ($fake_port) = $fake_out =~ /listening (\d+)/;
ok($fake_port, "fake PSP listening on $fake_port (HTTPS)");
my $url = "https://127.0.0.1:$fake_port";
# The fake's control API, over its HTTPS (curl: Perl here has no TLS module).
sub control
{
	my ($method, $path, $body) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(['curl', '-sS', '--cacert', $ca, '-X', $method, '-w', '\n%{http_code}',
			($body ? ('-H', 'Content-Type: application/json', '--data-binary', $json->encode($body)) : ()),
			"$url$path"], '>', \$out, '2>', \$err)
	  or die "$path: $err";
	my ($content, $status) = $out =~ /^(.*)\n(\d+)$/s or die "$path: $out";
	die "$path: $status $content" unless $status =~ /^2/;
	return $json->decode($content);
}
sub requests { scalar @{ control('GET', "/control/requests?path=$_[0]&limit=1000")->{requests} } }

my $node = pay_node('paypal', qq{
pay.psp_retry_base = '100ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
pay.http_ca_file = '$ca'
pay.paypal_cert_hosts = '127.0.0.1'
});
$node->safe_psql('postgres', 'CREATE ROLE proxy LOGIN IN ROLE pay_callback, pay_app');
sub psql { $node->safe_psql('postgres', $_[0]) }

# --- pay-proxy, where the fake's webhooks go ------------------------------------
system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);
my ($proxy_out, $proxy_err) = ('', '');
my $proxy = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$proxy_port",
		'--pool-size', '4', '--max-body-bytes', '65536'],
	'>', \$proxy_out, '2>', \$proxy_err);
my $proxy_url = "http://127.0.0.1:$proxy_port";
$deadline = time + 30;
until (($http->get("$proxy_url/healthz")->{status} // 0) == 200 || time > $deadline) { select(undef, undef, undef, 0.1) }
is($http->get("$proxy_url/healthz")->{status}, 200, 'pay-proxy is up');
control('POST', '/control/outbox', { provider => 'paypal', target => $proxy_url, gateway => 'pp',
	delay_ms => 20, retry_ms => [200, 400, 800, 1600] });

psql(qq{
SELECT pay.create_gateway('pp', 'paypal', '$url', '{"webhook_id": "$pp->{webhook_id}"}');
SELECT pay.set_secret('gateway:pp', 'client_id', '$pp->{client_id}');
SELECT pay.set_secret('gateway:pp', 'client_secret', '$pp->{client_secret}');
SELECT pay.create_merchant('acme', 'ACME', '$url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
});

sub order
{
	my ($no, $amount, $currency, $capture) = @_;
	return psql("SELECT id FROM pay.create_order('acme', '$no', $amount, '$currency', gateway => 'pp'"
		  . ($capture ? ", capture => '$capture'" : '') . ')');
}
sub status { psql("SELECT status || ' ' || coalesce(captured_amount::text, '-') FROM pay.orders WHERE id = $_[0]") }
sub txn { psql("SELECT psp_txn_id FROM pay.orders WHERE id = $_[0]") }
sub wait_status
{
	my ($order, $status) = @_;
	return wait_for_sql($node, "SELECT status = '$status' FROM pay.orders WHERE id = $order", 30);
}
sub approve { control('POST', '/control/paypal/approve', { id => $_[0] }) }
sub fake_order { control('GET', '/control/state')->{paypal}{orders}{ $_[0] } }

# --- automatic capture ----------------------------------------------------------
my $o1 = order('PP-1', 1234, 'USD');
ok(wait_for_sql($node, "SELECT next_action IS NOT NULL FROM pay.orders WHERE id = $o1", 30), 'create_payment answered');
my $pid = txn($o1);
like($pid, qr/^[A-Z0-9]{17}$/, 'the PayPal order id is the order\'s psp_txn_id');
is(psql("SELECT next_action FROM pay.orders WHERE id = $o1"),
	qq({"url": "https://www.sandbox.paypal.com/checkoutnow?token=$pid", "type": "redirect"}),
	'the next action redirects the buyer to PayPal\'s approve link');
my ($create) = grep { $_->{route} eq 'paypal.orders.create' } @{ control('GET', '/control/requests?path=/v2/checkout/orders&limit=100')->{requests} };
my $sent = $json->decode($create->{body});
is($sent->{intent} . ' ' . $sent->{purchase_units}[0]{custom_id} . ' ' . $sent->{purchase_units}[0]{amount}{value}
	  . ' ' . $sent->{purchase_units}[0]{amount}{currency_code}, "CAPTURE $o1 12.34 USD",
	'intent CAPTURE, custom_id our order id, 12.34 USD as a decimal string');
is($create->{headers}{'PayPal-Request-Id'} // $create->{headers}{'Paypal-Request-Id'}, "psp_${o1}_create_payment",
	'PayPal-Request-Id is the outbox idempotency key');
is(status($o1), 'pending -', 'pending until the buyer approves');

approve($pid);
ok(wait_status($o1, 'paid'), 'approval webhook -> capture_order queued and sent -> PAYMENT.CAPTURE.COMPLETED -> paid');
is(psql("SELECT string_agg(operation || ':' || state, ' ' ORDER BY id) FROM pay.outbox WHERE order_id = $o1 AND kind = 'psp_request'"),
	'create_payment:done capture_order:done', 'the approval queued the order capture, which was sent');
is(psql("SELECT string_agg(c.verdict, ' ' ORDER BY c.id) FROM pay.callbacks c WHERE c.gateway = 'pp'"),
	'accepted accepted', 'both webhooks (approved, capture completed) verified and accepted');
is(fake_order($pid)->{status}, 'COMPLETED', 'PayPal holds the order captured');

my $r1 = psql("SELECT pay.refund($o1, 234)");
ok(wait_for_sql($node, "SELECT psp_status = 'succeeded' FROM pay.refunds WHERE id = $r1", 30), 'the refund was sent and confirmed');
like(psql("SELECT psp_refund_id FROM pay.refunds WHERE id = $r1"), qr/^[A-Z0-9]{17}$/, 'PayPal\'s refund id is kept');
ok(wait_for_sql($node, "SELECT count(*) = 3 FROM pay.callbacks WHERE gateway = 'pp' AND verdict = 'accepted'", 30),
	'PAYMENT.CAPTURE.REFUNDED accepted');
is(psql("SELECT outcome FROM pay.callbacks WHERE gateway = 'pp' ORDER BY id DESC LIMIT 1"), 'no new refund amount',
	'the refund webhook confirms the refund pay booked: nothing booked twice');
is(psql("SELECT refunded_amount FROM pay.orders WHERE id = $o1"), '234', 'refunded once');

# A query of the paid order: its answer is the event a webhook would be, and changes nothing.
my $q1 = psql("SELECT pay.enqueue_psp_request($o1, 'query')");
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE id = $q1", 30), 'query sent');
is(psql("SELECT verdict || ': ' || reason FROM pay.psp_answers WHERE outbox_id = $q1"),
	'applied: already paid by this transaction', 'GET order: COMPLETED, the capture this order was paid by');

# A create PayPal refuses: the order fails with PayPal's issue.
control('POST', '/control/faults', { path => '/v2/checkout/orders', method => 'POST', mode => 'status', status => 422, count => 1,
	body => $json->encode({ name => 'UNPROCESSABLE_ENTITY', message => 'The requested action could not be performed.',
		details => [ { issue => 'PAYEE_ACCOUNT_RESTRICTED', description => 'The merchant account is restricted.' } ] }) });
my $of = order('PP-F', 100, 'USD');
ok(wait_status($of, 'failed'), 'a 422 to the create fails the order');
is(psql("SELECT failure_reason FROM pay.orders WHERE id = $of"), 'PAYEE_ACCOUNT_RESTRICTED: The merchant account is restricted.',
	'failure_reason: PayPal\'s issue and description');

# --- manual capture: authorize, partial capture, refund ------------------------------
my $o2 = order('PP-2', 5000, 'JPY', 'manual');
ok(wait_for_sql($node, "SELECT next_action IS NOT NULL FROM pay.orders WHERE id = $o2", 30), 'manual order created at PayPal');
my $pid2 = txn($o2);
is(fake_order($pid2)->{intent} . ' ' . fake_order($pid2)->{purchase_units}[0]{amount}{value}, 'AUTHORIZE 5000',
	'intent AUTHORIZE; 5000 JPY has no decimals');
approve($pid2);
ok(wait_status($o2, 'authorized'), 'approval -> authorize -> PAYMENT.AUTHORIZATION.CREATED -> authorized');
psql("SELECT pay.capture($o2, 3000)");
is(status($o2), 'paid 3000', 'pay.capture(3000): paid with the captured amount');
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE order_id = $o2 AND operation = 'capture'", 30),
	'the authorization capture was sent');
my ($cap) = grep { $_->{route} eq 'paypal.authorizations.capture' } @{ control('GET', '/control/requests?path=/v2/payments/authorizations/&limit=100')->{requests} };
my $cap_body = $json->decode($cap->{body});
is("$cap_body->{amount}{value} $cap_body->{amount}{currency_code} " . ($cap_body->{final_capture} ? 'final' : 'not final'),
	'3000 JPY final', 'a partial, final capture of 3000 JPY');
ok(wait_for_sql($node, "SELECT count(*) = 3 FROM pay.callbacks WHERE gateway = 'pp' AND verdict = 'accepted' AND order_id = $o2", 30),
	'approved, authorization created and capture completed: all accepted');
is(psql("SELECT outcome FROM pay.callbacks WHERE order_id = $o2 ORDER BY id DESC LIMIT 1"), 'already paid by this transaction',
	'the capture webhook of 3000 confirms the capture (no amount mismatch)');
is(psql("SELECT count(*) FROM pay.anomalies WHERE order_id = $o2"), '0', 'no anomaly');
my $r2 = psql("SELECT pay.refund($o2, 3000)");
ok(wait_for_sql($node, "SELECT psp_status = 'succeeded' FROM pay.refunds WHERE id = $r2", 30), 'the captured amount is refunded at PayPal');
is(control('GET', '/control/effects')->{orders}{"paypal:$o2"}{refunded_amount}, 3000, 'PayPal refunded 3000');

# --- manual capture: authorize, void ---------------------------------------------------
my $o3 = order('PP-3', 990, 'USD', 'manual');
ok(wait_for_sql($node, "SELECT next_action IS NOT NULL FROM pay.orders WHERE id = $o3", 30), 'second manual order created');
approve(txn($o3));
ok(wait_status($o3, 'authorized'), 'authorized');
psql("SELECT pay.void($o3)");
is(status($o3), 'cancelled -', 'pay.void: cancelled');
ok(wait_for_sql($node, "SELECT state = 'done' AND last_status = 200 FROM pay.outbox WHERE order_id = $o3 AND operation = 'void'", 30),
	'the void was sent (200: the authorization, as return=representation asks)');
ok(wait_for_sql($node, "SELECT EXISTS (SELECT 1 FROM pay.callbacks WHERE order_id = $o3 AND verdict = 'accepted' AND outcome LIKE 'close ignored%')", 30),
	'PAYMENT.AUTHORIZATION.VOIDED accepted; the order is cancelled already');
is(scalar(grep { $_->{status} eq 'VOIDED' } values %{ control('GET', '/control/state')->{paypal}{authorizations} }), 1,
	'PayPal holds the authorization voided');

# --- the certificate and the token: fetched once ---------------------------------------
is(requests('/v1/notifications/certs/'), 1, 'the signing certificate was fetched once for all the webhooks');
is(psql("SELECT count(*) FROM pay.paypal_certs"), '1', 'and is kept by URL');
is(requests('/v1/oauth2/token'), 1, 'one OAuth token served every request');
is(scalar(grep { ($_->{headers}{Authorization} // '') !~ /^Bearer A21AA/ } @{ control('GET', '/control/requests?path=/v2/&limit=1000')->{requests} }), 0,
	'every /v2/ request carried the Bearer token');

control('POST', '/control/paypal/expire_tokens', {});
my $o4 = order('PP-4', 1, 'KWD');
ok(wait_for_sql($node, "SELECT next_action IS NOT NULL FROM pay.orders WHERE id = $o4", 30),
	'after PayPal expired the token, the create still went through');
is(requests('/v1/oauth2/token'), 2, 'the refused token was replaced once');
like(psql("SELECT string_agg(a.http_status::text, ' ' ORDER BY a.id) FROM pay.outbox_attempts a JOIN pay.outbox x ON x.id = a.outbox_id WHERE x.order_id = $o4"),
	qr/^401 201$/, 'the 401 was retried with the new token');
is(fake_order(txn($o4))->{purchase_units}[0]{amount}{value}, '0.001', '1 KWD minor unit is 0.001');

# --- a token refreshed before it expires --------------------------------------------------
# A second fake whose tokens last 10 s: pay takes a new one a tenth of that
# before, so no request meets an expired token.
my %short = %$cfg;
# (key files are relative to the configuration's directory: made absolute)
for my $v (values %short)
{
	if (ref $v eq 'HASH') { $_ = "$fake_dir/$_" for grep { !ref && /^keys\// } values %$v }
	elsif (!ref $v && $v =~ /^keys\//) { $v = "$fake_dir/$v" }
}
$short{paypal} = { %{ $short{paypal} }, token_ttl_s => 10 };
open my $cf, '>', "$tmp/short.json" or die;
print $cf $json->encode(\%short);
close $cf;
my ($short_out, $short_err) = ('', '');
my $short_fake = IPC::Run::start(['/usr/bin/python3', "$fake_dir/fake_psp.py", '--port', '0', '--config', "$tmp/short.json",
		'--tls-cert', "$keys/tls_server.pem", '--tls-key', "$keys/tls_server.key"],
	'>', \$short_out, '2>', \$short_err);
$deadline = time + 30;
$short_fake->pump until $short_out =~ /listening (\d+)/ || time > $deadline;
my ($short_port) = $short_out =~ /listening (\d+)/;
psql(qq{
SELECT pay.create_gateway('pp_short', 'paypal', 'https://127.0.0.1:$short_port', '{"webhook_id": "$pp->{webhook_id}"}');
SELECT pay.set_secret('gateway:pp_short', 'client_id', '$pp->{client_id}');
SELECT pay.set_secret('gateway:pp_short', 'client_secret', '$pp->{client_secret}');
});
sub short_order
{
	my $o = psql("SELECT id FROM pay.create_order('acme', '$_[0]', 100, 'USD', gateway => 'pp_short')");
	wait_for_sql($node, "SELECT next_action IS NOT NULL FROM pay.orders WHERE id = $o", 30);
	return $o;
}
sub short_tokens
{
	my ($out, $err) = ('', '');
	IPC::Run::run(['curl', '-sS', '--cacert', $ca, "https://127.0.0.1:$short_port/control/requests?path=/v1/oauth2/token"],
		'>', \$out, '2>', \$err) or die $err;
	return scalar @{ $json->decode($out)->{requests} };
}
my @short = (short_order('PP-S1'), short_order('PP-S2'));
is(short_tokens(), 1, 'two creates, one token');
select(undef, undef, undef, 9.5);
push @short, short_order('PP-S3');
is(short_tokens(), 2, 'after 9.5 s of a 10 s token, a new one');
is(psql("SELECT string_agg(DISTINCT a.http_status::text, ' ') FROM pay.outbox_attempts a JOIN pay.outbox x ON x.id = a.outbox_id
          WHERE x.order_id IN (" . join(',', @short) . ")"), '201', 'every create went through at once: no expired token met');
$short_fake->signal('TERM');
$short_fake->finish;

# --- a capture PayPal denies ---------------------------------------------------------------
my $o6 = order('PP-6', 4200, 'USD');
ok(wait_for_sql($node, "SELECT next_action IS NOT NULL FROM pay.orders WHERE id = $o6", 30), 'an order whose capture will be denied');
control('POST', '/control/paypal/approve', { id => txn($o6), capture => 'denied' });
ok(wait_status($o6, 'failed'), 'PAYMENT.CAPTURE.DENIED: failed');
is(psql("SELECT event_type FROM pay.callbacks WHERE order_id = $o6 AND outcome = 'failed'"), 'PAYMENT.CAPTURE.DENIED',
	'moved by the denial');

# --- wrong client credentials: no token, nothing leaked ----------------------------------------
psql(qq{
SELECT pay.create_gateway('pp_bad', 'paypal', '$url', '{"webhook_id": "$pp->{webhook_id}"}');
SELECT pay.set_secret('gateway:pp_bad', 'client_id', '$pp->{client_id}');
SELECT pay.set_secret('gateway:pp_bad', 'client_secret', 'EWRONG-secret-value');
});
my $o7 = psql("SELECT id FROM pay.create_order('acme', 'PP-7', 100, 'USD', gateway => 'pp_bad')");
ok(wait_for_sql($node, "SELECT attempts >= 2 FROM pay.outbox WHERE order_id = $o7", 30), 'the create is tried again');
like(psql("SELECT last_error FROM pay.outbox WHERE order_id = $o7"),
	qr/OAuth token request to .*\/v1\/oauth2\/token was answered HTTP 401: invalid_client/,
	'each attempt fails building the request: PayPal refused the client credentials');
is(psql("SELECT status FROM pay.orders WHERE id = $o7"), 'pending', 'the order is not failed for it');
# (the log holds this test's own statements, set_secret's among them: those lines aside)
my $log = join '', grep { !/ statement: / } split /^/, slurp_file($node->logfile);
my $leaks = psql("SELECT count(*) FROM pay.outbox WHERE last_error LIKE '%A21AA%' OR last_error LIKE '%EWRONG%' OR params::text LIKE '%A21AA%'")
  + psql("SELECT count(*) FROM pay.psp_answers WHERE body LIKE '%A21AA%' OR headers::text LIKE '%A21AA%'");
is($leaks . ' ' . ($log =~ /A21AA|EWRONG|\Q$pp->{client_secret}\E/ ? 'in the log' : 'not in the log'), '0 not in the log',
	'no token or client secret in the outbox, the answers or the server log');

# --- bad webhooks: recorded and refused ------------------------------------------------
sub send_webhook
{
	my (%a) = @_;
	my $r = control('POST', '/control/send', { provider => 'paypal', target => $proxy_url, gateway => 'pp',
		order_id => "$a{order}", amount => $a{amount}, currency => $a{currency}, event => $a{event} // 'paid',
		($a{variant} ? (variant => $a{variant}) : ()), ($a{age_s} ? (age_s => $a{age_s}) : ()) });
	return $r->{results}[-1]{status};
}
my $o5 = order('PP-5', 700, 'USD');
ok(wait_for_sql($node, "SELECT next_action IS NOT NULL FROM pay.orders WHERE id = $o5", 30), 'an order for bad webhooks');
my $before = psql("SELECT count(*) FROM pay.callbacks");
is(send_webhook(order => $o5, amount => 700, currency => 'USD', variant => 'tampered'), 401, 'a tampered body: 401');
is(send_webhook(order => $o5, amount => 700, currency => 'USD', variant => 'wrong_key'), 401, 'signed with another key: 401');
is(send_webhook(order => $o5, amount => 700, currency => 'USD', variant => 'wrong_cert_url'), 401,
	'PAYPAL-CERT-URL on api.sandbox.paypal.com.attacker.example: 401');
is(send_webhook(order => $o5, amount => 700, currency => 'USD', variant => 'stale', age_s => 3600), 401, 'an hour old: 401');
is(send_webhook(order => 999999, amount => 700, currency => 'USD'), 400, 'an unknown order: 400');
is(psql("SELECT string_agg(verdict || ' ' || coalesce(reason_code, ''), ', ' ORDER BY id) FROM pay.callbacks WHERE id > (SELECT max(id) FROM pay.callbacks) - 5"),
	'rejected PY010, rejected PY010, rejected PY010, rejected PY011, rejected 22023', 'each recorded with its reason');
like(psql("SELECT reason FROM pay.callbacks WHERE reason_code = 'PY010' AND reason LIKE '%host%'"), qr/attacker\.example.*not PayPal's/,
	'the certificate host was refused');
is(send_webhook(order => $o5, amount => 701, currency => 'USD'), 200, 'an amount mismatch is acknowledged ...');
is(psql("SELECT kind FROM pay.anomalies WHERE order_id = $o5"), 'amount_mismatch', '... recorded as an anomaly ...');
is(status($o5), 'pending -', '... and moves nothing');
is(requests('/v1/notifications/certs/'), 1, 'the bad webhooks fetched no certificate (the kept one, or a refused host)');

$proxy->kill_kill;
$fake->signal('TERM');
$fake->finish;
done_testing();
