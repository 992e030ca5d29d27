# Traces end to end: a merchant's create through pay-proxy with a W3C
# traceparent, the PSP request it causes, the PSP's callback (which carries
# no traceparent) and the merchant notification: one trace id in SQL on the
# order, callback and outbox rows, and on every outbound request (each with
# its own span id); a malformed traceparent starts a new trace; pay-proxy's
# JSON access log and the dispatcher's attempt log (pay.attempt_log) name
# the trace and never a signature.
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
my $http = HTTP::Tiny->new(timeout => 10);
my $json = JSON::PP->new->canonical;

my $port = start_peer();
my $url = "http://127.0.0.1:$port";
my $node = pay_node('traces', "pay.attempt_log = 'attempts.log'\n");
sub q1 { return $node->safe_psql('postgres', shift) }
my $api_secret = 'api-secret-traces';
my $cb_secret = 'generic-secret-traces';
notify_merchant($node, 'shop', "$url/ok/notify", $api_secret);
q1(qq{
SELECT pay.create_gateway('gj', 'generic', '$url/json/gj');
SELECT pay.set_secret('gateway:gj', 'webhook_secret', '$cb_secret');
CREATE ROLE proxy LOGIN IN ROLE pay_callback, pay_app;
});

system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);
my $proxy_log = "$tmp/proxy.log";
my $proxy = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$proxy_port",
		'--pool-size', '2', '--log-format', 'json'], '>', "$tmp/proxy.out", '2>', $proxy_log);
my $proxy_url = "http://127.0.0.1:$proxy_port";
my $deadline = time + 30;
sleep 0.1 until ($http->get("$proxy_url/healthz")->{status} // 0) == 200 || time > $deadline;

# A signed merchant API call (README, "Merchant API").
sub create_payment
{
	my ($order_no, %headers) = @_;
	my %p = (merchant_order_no => $order_no, amount => 1000, currency => 'USD', gateway => 'gj');
	my %signed = (%p, merchant => 'shop', timestamp => time =~ s/\..*//r, nonce => "nonce-$order_no");
	my $canonical = join '&', map { "$_=$signed{$_}" } sort keys %signed;
	my $res = $http->post("$proxy_url/api/v1/payments", { content => $json->encode(\%p), headers => {
		'Content-Type' => 'application/json', 'X-Pay-Merchant' => 'shop', 'X-Pay-Timestamp' => $signed{timestamp},
		'X-Pay-Nonce' => $signed{nonce}, 'X-Pay-Signature' => hmac_sha256_hex($canonical, $api_secret), %headers } });
	return ($res->{status}, eval { $json->decode($res->{content}) } // {});
}

my $trace = '4bf92f3577b34da6a3ce929d0e0e4736';
my $client_span = '00f067aa0ba902b7';
my ($st, $order) = create_payment('TR-1', traceparent => "00-$trace-$client_span-01", tracestate => 'vendor=1');
is($st, 201, 'create through pay-proxy with a traceparent');
my $id = $order->{id};
is(q1("SELECT trace_id FROM pay.orders WHERE id = $id"), $trace, 'the order stores the trace id');

# the PSP request, queued from SQL later (no trace set): the order's trace
q1("SELECT pay.enqueue_psp_request($id, 'create_payment')");
is(q1("SELECT trace_id FROM pay.outbox WHERE order_id = $id AND kind = 'psp_request'"), $trace,
	'the PSP request row takes the order\'s trace id');
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE order_id = $id AND kind = 'psp_request'"),
	'the PSP request is delivered');

# the PSP's callback through the proxy, without a traceparent
my %cb = (event_id => "ev-$id", out_trade_no => "$id", trade_no => "t-$id", status => 'paid', amount => '1000',
	currency => 'USD', timestamp => time =~ s/\..*//r, nonce => "nonce-cb-$id");
$cb{sign} = hmac_sha256_hex(join('&', map { "$_=$cb{$_}" } sort keys %cb), $cb_secret);
my $res = $http->post("$proxy_url/callbacks/gj", { content => $json->encode(\%cb),
		headers => { 'Content-Type' => 'application/json' } });
is($res->{status}, 200, 'the callback is accepted');
is(q1("SELECT trace_id FROM pay.callbacks WHERE order_id = $id"), $trace, 'the callback row takes the order\'s trace id');
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE order_id = $id AND kind = 'merchant_notification'"),
	'the merchant notification is delivered');
is(q1("SELECT trace_id FROM pay.outbox WHERE order_id = $id AND kind = 'merchant_notification'"), $trace,
	'the notification row too');
is(q1(qq{SELECT (SELECT count(*) FROM pay.orders WHERE trace_id = '$trace') || ' ' ||
                (SELECT count(*) FROM pay.callbacks WHERE trace_id = '$trace') || ' ' ||
                (SELECT count(*) FROM pay.outbox WHERE trace_id = '$trace')}), '1 1 2',
	'one trace id finds the create, the callback, the PSP request and the notification');

# every outbound request carried the trace with its own span id
my @sent = grep { $_->[1] =~ m{^/(json/gj|ok/notify)} } @{ peer_get($port, '/_log') };
is(scalar(@sent), 2, 'two outbound requests: the PSP request and the notification');
my @spans;
for my $r (@sent)
{
	like($r->[5] // '', qr/^00-$trace-[0-9a-f]{16}-01$/, "$r->[1]: traceparent with the trace id");
	push @spans, ($r->[5] // '') =~ /^00-[0-9a-f]{32}-([0-9a-f]{16})-/;
}
ok(@spans == 2 && $spans[0] ne $spans[1] && !grep({ $_ eq $client_span } @spans), 'each with a new span id');

# a malformed traceparent: ignored, the proxy starts a new trace
my ($st2, $order2) = create_payment('TR-2', traceparent => "00-$trace-$client_span-zz");
is($st2, 201, 'create with a malformed traceparent');
my $trace2 = q1("SELECT trace_id FROM pay.orders WHERE id = $order2->{id}");
like($trace2, qr/^[0-9a-f]{32}$/, 'the order has a trace id');
isnt($trace2, $trace, 'a new one');

# the JSON access log
$proxy->signal('TERM');
$proxy->finish;
my @lines = grep { /"msg":"access"/ } split /\n/, slurp_file($proxy_log);
my @entries = map { eval { decode_json($_) } } @lines;
is(scalar(@entries), scalar(@lines), 'every access line is one JSON object');
my ($create) = grep { ($_->{route} // '') eq 'create_payment' && ($_->{trace_id} // '') eq $trace } @entries;
ok($create, 'the create is logged with its trace id');
is_deeply([ map { defined $create->{$_} ? 1 : 0 } qw(time route path status duration_ms) ], [1, 1, 1, 1, 1],
	'with time, route, path, status and duration');
ok((grep { ($_->{trace_id} // '') eq $trace2 } @entries), 'the new trace is logged too');
my ($callback) = grep { ($_->{route} // '') eq 'callback' } @entries;
ok($callback && !defined $callback->{trace_id}, 'a callback without a traceparent has no trace of its own in the log');
my $log = slurp_file($proxy_log);
unlike($log, qr/$cb{sign}|X-Pay-Signature|$api_secret/i, 'no signature or secret in the log');

# the dispatcher's attempt log: one JSON object per attempt
my @attempts = map { decode_json($_) } grep { length } split /\n/, slurp_file($node->data_dir . '/attempts.log');
my @traced = grep { ($_->{trace_id} // '') eq $trace } @attempts;
is(join(',', sort map { "$_->{kind}:$_->{destination}:$_->{operation}:$_->{outcome}:$_->{http_status}" } @traced),
	'merchant_notification:merchant:shop:paid:done:200,psp_request:gateway:gj:create_payment:done:200',
	'the attempt log has both attempts, with the trace id, destination, operation, outcome and status');
ok(!grep({ !defined $_->{time} || !defined $_->{duration_ms} || !exists $_->{sqlstate} } @attempts),
	'each with time, duration and SQLSTATE');
unlike(slurp_file($node->data_dir . '/attempts.log'), qr/$api_secret|signature/i, 'no secret or signature in it');

$node->stop;
done_testing();
