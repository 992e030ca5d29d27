# Spans exported over OTLP/HTTP (JSON) to a collector on loopback
# (test/lib/otlp_receiver.py): pay-proxy's server span of a merchant's create
# has the client's span as parent and the client's trace id; the
# dispatcher's client span of the PSP request it causes has the same trace
# id and exactly the span id of the traceparent the PSP received; the bodies
# have the OTLP shape and no secret or signature.  A dead or hanging
# collector delays no request and no delivery, and the proxy still stops
# promptly.
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

# the collector
my $port_file = "$tmp/collector.port";
my $collector = IPC::Run::start(['/usr/bin/python3', "$top/test/lib/otlp_receiver.py", '--port-file', $port_file],
	'>', "$tmp/collector.out", '2>', "$tmp/collector.err");
my $wait = time + 10;
sleep 0.02 until -e $port_file || time > $wait;
my $collector_port = slurp_file($port_file) =~ s/\s+//gr;
my $endpoint = "http://127.0.0.1:$collector_port/v1/traces";

my $port = start_peer();
my $url = "http://127.0.0.1:$port";
my $node = pay_node('otlp', "pay.otlp_endpoint = '$endpoint'\n");
sub q1 { return $node->safe_psql('postgres', shift) }
my $api_secret = 'api-secret-otlp';
notify_merchant($node, 'shop', "$url/ok/notify", $api_secret);
q1(qq{
SELECT pay.create_gateway('gj', 'generic', '$url/json/gj');
CREATE ROLE proxy LOGIN IN ROLE pay_callback, pay_app;
});

system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);

# Start pay-proxy exporting to $otlp; returns (handle, url, log file).
sub start_proxy
{
	my ($name, $otlp) = @_;
	my $p = PostgreSQL::Test::Cluster::get_free_port();
	my $log = "$tmp/$name.log";
	my $h = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$p",
			'--pool-size', '2', '--otlp-endpoint', $otlp], '>', "$tmp/$name.out", '2>', $log);
	my $deadline = time + 30;
	sleep 0.1 until ($http->get("http://127.0.0.1:$p/healthz")->{status} // 0) == 200 || time > $deadline;
	return ($h, "http://127.0.0.1:$p", $log);
}

# A signed merchant API call through the proxy at $base (README, "Merchant API").
sub create_payment
{
	my ($base, $order_no, %headers) = @_;
	my %p = (merchant_order_no => $order_no, amount => 1000, currency => 'USD', gateway => 'gj');
	my %signed = (%p, merchant => 'shop', timestamp => time =~ s/\..*//r, nonce => "nonce-$order_no");
	my $canonical = join '&', map { "$_=$signed{$_}" } sort keys %signed;
	my $res = $http->post("$base/api/v1/payments", { content => $json->encode(\%p), headers => {
		'Content-Type' => 'application/json', 'X-Pay-Merchant' => 'shop', 'X-Pay-Timestamp' => $signed{timestamp},
		'X-Pay-Nonce' => $signed{nonce}, 'X-Pay-Signature' => hmac_sha256_hex($canonical, $api_secret), %headers } });
	return ($res->{status}, eval { $json->decode($res->{content}) } // {});
}

# Every span the collector received so far, each with its resource's service name.
sub received_spans
{
	my @spans;
	for my $post (@{ decode_json($http->get("http://127.0.0.1:$collector_port/_bodies")->{content}) })
	{
		my $req = eval { decode_json($post->{body}) } or next;
		for my $rs (@{ $req->{resourceSpans} // [] })
		{
			my ($svc) = map { $_->{value}{stringValue} }
			  grep { $_->{key} eq 'service.name' } @{ $rs->{resource}{attributes} // [] };
			for my $ss (@{ $rs->{scopeSpans} // [] })
			{
				push @spans, { %$_, service => $svc, scope => $ss->{scope}{name} } for @{ $ss->{spans} // [] };
			}
		}
	}
	return @spans;
}

# Wait until a span matching $pred arrives; returns it.
sub wait_span
{
	my ($pred) = @_;
	my $deadline = time + 15;
	while (time < $deadline)
	{
		my ($s) = grep { $pred->($_) } received_spans();
		return $s if $s;
		sleep 0.1;
	}
	return undef;
}

sub attrs
{
	my ($span) = @_;
	return { map { $_->{key} => $_->{value}{stringValue} // $_->{value}{intValue} } @{ $span->{attributes} // [] } };
}

my $trace = '4bf92f3577b34da6a3ce929d0e0e4736';
my $client_span = '00f067aa0ba902b7';
my ($proxy, $proxy_url, $proxy_log) = start_proxy('proxy', $endpoint);

my ($st, $order) = create_payment($proxy_url, 'OT-1', traceparent => "00-$trace-$client_span-01");
is($st, 201, 'create through pay-proxy with a traceparent');
my $id = $order->{id};

# pay-proxy's server span
my $server = wait_span(sub { $_[0]{service} eq 'pay-proxy' && $_[0]{traceId} eq $trace });
ok($server, 'the collector receives the proxy\'s span of the create');
is($server->{parentSpanId}, $client_span, 'its parent is the client\'s span');
like($server->{spanId}, qr/^[0-9a-f]{16}$/, 'its own span id is 16 hex digits');
isnt($server->{spanId}, $client_span, 'not the client\'s');
is($server->{kind}, 2, 'kind SERVER');
is($server->{scope}, 'pay', 'scope "pay"');
is_deeply(attrs($server), { 'http.request.method' => 'POST', 'url.path' => '/api/v1/payments',
		'http.response.status_code' => '201' }, 'method, path and status attributes');
is($server->{status}{code}, 1, 'status OK');
ok($server->{startTimeUnixNano} =~ /^\d{19}$/ && $server->{endTimeUnixNano} =~ /^\d{19}$/
	&& $server->{startTimeUnixNano} le $server->{endTimeUnixNano}
	&& abs($server->{endTimeUnixNano} / 1e9 - time) < 60,
	'start and end times are nanosecond strings, in order, now');

# the dispatcher's client span of the PSP request
q1("SELECT pay.enqueue_psp_request($id, 'create_payment')");
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE order_id = $id AND kind = 'psp_request'"),
	'the PSP request is delivered');
my ($sent) = grep { $_->[1] =~ m{^/json/gj} } @{ peer_get($port, '/_log') };
my ($sent_span) = ($sent->[5] // '') =~ /^00-$trace-([0-9a-f]{16})-01$/;
ok($sent_span, 'the PSP received a traceparent with the trace id');
my $client = wait_span(sub { $_[0]{service} eq 'pay-dispatcher' && $_[0]{spanId} eq ($sent_span // '') });
ok($client, 'the collector receives the dispatcher\'s span with the span id of that traceparent');
is($client->{traceId}, $trace, 'in the same trace');
is($client->{kind}, 3, 'kind CLIENT');
is_deeply(attrs($client), { 'http.request.method' => 'POST', 'server.address' => '127.0.0.1',
		'http.response.status_code' => '200' }, 'method, host and status attributes, no path');
is($client->{status}{code}, 1, 'status OK');
ok($client->{startTimeUnixNano} =~ /^\d{19}$/ && $client->{startTimeUnixNano} le $client->{endTimeUnixNano}
	&& abs($client->{endTimeUnixNano} / 1e9 - time) < 60, 'start and end times, in order, now');

# a request the proxy answers with an error: an error span, the path without its query
my $res = $http->get("$proxy_url/api/v1/payments/999999?sign=secret-query");
my $lookup = wait_span(sub { $_[0]{service} eq 'pay-proxy' && (attrs($_[0])->{'url.path'} // '') =~ m{^/api/v1/payments/999999} });
ok($lookup, 'the span of a request without a traceparent arrives too');
is(attrs($lookup)->{'url.path'}, '/api/v1/payments/999999', 'the path without the query string');
ok(!exists $lookup->{parentSpanId}, 'a root span: no parent');

# JSON escaping: a quote, a backslash and non-ASCII bytes in the path
my $odd_trace = '0af7651916cd43dd8448eb211c80319c';
$http->get("$proxy_url/api/v1/payments/a%22b%5Cc%C3%A9", { headers => { traceparent => "00-$odd_trace-$client_span-01" } });
my $odd = wait_span(sub { $_[0]{traceId} eq $odd_trace });
is(attrs($odd // {})->{'url.path'}, "/api/v1/payments/a\"b\\c\x{fffd}\x{fffd}",
	'a quote and a backslash are escaped, bytes outside ASCII become U+FFFD');

my $bodies = decode_json($http->get("http://127.0.0.1:$collector_port/_bodies")->{content});
ok(!grep({ $_->{path} ne '/v1/traces' || ($_->{content_type} // '') ne 'application/json' } @$bodies),
	'every post goes to the endpoint\'s path as application/json');
ok(!grep({ !eval { decode_json($_->{body}) } } @$bodies), 'every body is valid JSON');
unlike(join('', map { $_->{body} } @$bodies), qr/secret|signature|sign=|X-Pay/i,
	'no secret, signature or query string in any span');

my $t0 = time;
$proxy->signal('TERM');
$proxy->finish;
ok(time - $t0 < 5, 'the proxy stops promptly');

# A dead collector (nothing listens) and a hanging one (never answers):
# requests are as fast as ever, and the proxy still stops promptly.
my $closed = PostgreSQL::Test::Cluster::get_free_port();
for my $case (["dead", "http://127.0.0.1:$closed/v1/traces"], ["hanging", "$url/hang/v1/traces"])
{
	my ($name, $otlp) = @$case;
	my ($h, $base, $log) = start_proxy($name, $otlp);
	my $start = time;
	my $ok = 0;
	for my $i (1 .. 20)
	{
		my ($s) = create_payment($base, "OT-$name-$i", traceparent => "00-$trace-$client_span-01");
		$ok++ if $s == 201;
	}
	is($ok, 20, "$name collector: every create succeeds");
	ok(time - $start < 10, "$name collector: 20 creates take no longer than usual");
	sleep 2.5;				# a post or two fails meanwhile
	my $t = time;
	$h->signal('TERM');
	$h->finish;
	ok(time - $t < 5, "$name collector: the proxy stops promptly");
	like(slurp_file($log), qr/warning otlp: \d+ spans not delivered/, "$name collector: the failure is logged");
}

# The dispatcher with a dead, then a hanging collector: deliveries go on as usual.
for my $case (["dead", "http://127.0.0.1:$closed/v1/traces"], ["hanging", "$url/hang/v1/traces"])
{
	my ($name, $otlp) = @$case;
	q1("ALTER SYSTEM SET pay.otlp_endpoint = '$otlp'; SELECT pg_reload_conf()");
	sleep 0.5;
	my $start = time;
	for my $i (1 .. 3)
	{
		my $oid = q1(qq{BEGIN; SET LOCAL pay.traceparent = '00-$trace-$client_span-01';
			SELECT id FROM pay.create_order('shop', 'OTD-$name-$i', 1000, 'USD', gateway => 'gj'); COMMIT;});
		q1("SELECT pay.enqueue_psp_request($oid, 'create_payment')");
		ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE order_id = $oid AND kind = 'psp_request'", 10),
			"$name collector: PSP request $i is delivered");
		sleep 1.2;				# a batch is posted (and fails) in between
	}
	ok(time - $start < 15, "$name collector: deliveries take no longer than usual");
}
like(slurp_file($node->logfile), qr/span posts to pay\.otlp_endpoint failed/, 'the dispatcher logs the failed posts');

$collector->kill_kill;
$node->stop;
done_testing();
