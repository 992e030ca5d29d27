# test/t/011_proxy_limits.pl — pay-proxy against abusive clients, over raw
# loopback sockets: request headers that trickle in (the header deadline),
# many connections from one address (the per-client limit), requests whose
# framing or Host is ambiguous (refused before the body is read), and a
# callback body of deeply nested JSON (passed to SQL as it came).  The
# database side is a stub handle_callback that echoes what it received.
use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use Errno qw(EAGAIN EWOULDBLOCK);
use File::Basename qw(dirname);
use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $top = abs_path(dirname(__FILE__) . '/../..');
my $proxy_bin = "$top/proxy/pay-proxy";
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $json = JSON::PP->new->utf8->canonical;

my ($out, $err) = ('', '');
my $built = IPC::Run::run([ 'make', '-s', '-C', "$top/proxy" ], '>', \$out, '2>', \$err);
ok($built && -x $proxy_bin, 'make -C proxy builds pay-proxy') or diag("$out$err");
BAIL_OUT('pay-proxy did not build') unless $built && -x $proxy_bin;

IPC::Run::run([ $proxy_bin, '--help' ], '>', \$out, '2>', \$err);
like($out, qr/--header-timeout-ms=VALUE\s+PAY_PROXY_HEADER_TIMEOUT_MS/, '--help lists --header-timeout-ms');
like($out, qr/--max-connections-per-client=VALUE\s+PAY_PROXY_MAX_CONNECTIONS_PER_CLIENT/,
	'--help lists --max-connections-per-client');
like($out, qr/--client-rate=VALUE\s+PAY_PROXY_CLIENT_RATE/, '--help lists --client-rate');

# ---------------------------------------------------------------------------
# A cluster with a stub pay.handle_callback that echoes its input
# ---------------------------------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('limits');
$node->init;
$node->start;
$node->safe_psql('postgres', <<'SQL');
CREATE SCHEMA pay;
CREATE TABLE pay.calls (id serial PRIMARY KEY, provider text);
CREATE FUNCTION pay.handle_callback(provider text, headers jsonb, raw_body text)
RETURNS TABLE (http_status integer, content_type text, body text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pay.calls (provider) VALUES (provider);
  RETURN QUERY SELECT 200, 'application/json',
    jsonb_build_object('provider', provider, 'body_length', octet_length(raw_body),
                       'body_md5', md5(raw_body))::text;
END $$;
SQL
my $dsn = $node->connstr('postgres');

sub calls
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM pay.calls');
}

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
my @proxies;

# start_proxy(name, flags) — a running proxy on a free port of 127.0.0.1
sub start_proxy
{
	my ($name, @flags) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $log = "$tmp/$name.log";
	my $h = IPC::Run::start([ $proxy_bin, "--dsn=$dsn", "--listen=127.0.0.1:$port", @flags ],
		'<', \undef, '>', "$tmp/$name.out", '2>', $log);
	for (1 .. 200)
	{
		last if -s $log && slurp_file($log) =~ /listening on/;
		sleep 0.05;
	}
	like(slurp_file($log), qr/info pay-proxy listening on 127\.0\.0\.1:$port/, "$name started");
	my $p = { name => $name, h => $h, port => $port, log => $log };
	push @proxies, $p;
	return $p;
}

# raw(proxy, bytes, from => local address, timeout => s) — send bytes, read until
# the server closes or the timeout: {data, status, eof, seconds, responses, body, json}
sub raw
{
	my ($p, $bytes, %opt) = @_;
	my $t0 = time;
	my %r = (data => '', status => '000', eof => 0, responses => 0);
	my $s = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1', PeerPort => $p->{port}, Proto => 'tcp',
		LocalAddr => $opt{from} // '127.0.0.1', Timeout => 2);
	if ($s)
	{
		$s->autoflush(1);
		local $SIG{PIPE} = 'IGNORE';
		syswrite($s, $bytes);
		my $sel = IO::Select->new($s);
		my $until = $t0 + ($opt{timeout} // 5);
		while ((my $left = $until - time) > 0)
		{
			last unless $sel->can_read($left);
			my $n = sysread($s, my $buf, 65536);
			if (!$n)
			{
				$r{eof} = 1;
				last;
			}
			$r{data} .= $buf;
		}
		close $s;
	}
	$r{seconds} = time - $t0;
	$r{status} = $1 if $r{data} =~ m{\AHTTP/1\.[01] (\d{3}) };
	$r{responses} = () = $r{data} =~ m{^HTTP/1\.[01] \d{3} }mg;
	$r{body} = $r{data} =~ /\r\n\r\n(.*)\z/s ? $1 : '';
	$r{json} = eval { $json->decode($r{body}) };
	return \%r;
}

my $healthz = "GET /healthz HTTP/1.1\r\nHost: pay\r\nConnection: close\r\n\r\n";

# The slow client: opens `count` connections from `from`, starts a request on
# each and then sends one more header line on each every `interval` ms, never
# finishing the headers, for `duration` ms.  It prints, per connection, when
# the server ended it ("closed <i> <ms>") or that it is still open at the end.
my $slow_client = "$tmp/slow_headers.pl";
open my $fh, '>', $slow_client or die $!;
print $fh <<'PERL';
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
my ($port, $from, $count, $interval_ms, $duration_ms) = @ARGV;
$SIG{PIPE} = 'IGNORE';
$| = 1;
my $t0 = time;
my (@socks, %closed);
for my $i (0 .. $count - 1)
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, LocalAddr => $from,
		Proto => 'tcp', Timeout => 2);
	if (!$s) { $closed{$i} = 0; next; }
	$s->blocking(0);
	syswrite($s, "POST /callbacks/slow HTTP/1.1\r\nHost: pay\r\n");
	$socks[$i] = $s;
}
print "connected\n";
while ((time - $t0) * 1000 < $duration_ms)
{
	for my $i (0 .. $count - 1)
	{
		next if exists $closed{$i};
		my $s = $socks[$i];
		my $n = sysread($s, my $buf, 4096);
		my $gone = (defined $n && $n == 0) || (!defined $n && !$!{EAGAIN} && !$!{EWOULDBLOCK});
		$gone ||= !defined syswrite($s, "X-Trickle: " . int((time - $t0) * 1000) . "\r\n") && !$!{EAGAIN};
		$closed{$i} = int((time - $t0) * 1000) if $gone;
	}
	last if keys %closed == $count;
	sleep $interval_ms / 1000;
}
for my $i (0 .. $count - 1)
{
	print exists $closed{$i} ? "closed $i $closed{$i}\n" : "open $i\n";
}
PERL
close $fh;

# slow_start(proxy, from, count, interval_ms, duration_ms) — the slow client, running
sub slow_start
{
	my ($p, $from, $count, $interval, $duration) = @_;
	my %c = (out => '');
	$c{h} = IPC::Run::start([ $^X, $slow_client, $p->{port}, $from, $count, $interval, $duration ],
		'<', \undef, '>', \$c{out}, '2>', \$c{err});
	$c{h}->pump until $c{out} =~ /connected\n/ || !$c{h}->pumpable;
	return \%c;
}

# slow_finish(client) — {closed => {i => ms}, open => count}
sub slow_finish
{
	my ($c) = @_;
	$c->{h}->finish;
	my %res = (closed => {}, open => 0);
	$res{closed}{$1} = $2 while $c->{out} =~ /^closed (\d+) (\d+)$/mg;
	$res{open} = () = $c->{out} =~ /^open \d+$/mg;
	return \%res;
}

# ---------------------------------------------------------------------------
# Request headers that never finish: every connection slot taken by clients
# trickling header lines.  The request deadline starts only after the headers
# and MHD's idle timeout restarts with every line, so only the header deadline
# (counted from accept) frees the slots.
# ---------------------------------------------------------------------------
my $header_timeout_ms = 1500;
my $p1 = start_proxy('slow', '--max-connections=16', '--max-connections-per-client=100',
	"--header-timeout-ms=$header_timeout_ms", '--request-timeout-ms=8000');
is(raw($p1, $healthz)->{status}, 200, 'healthz answers before the slow clients come');

my $slow = slow_start($p1, '127.0.0.1', 16, 250, 7000);
my $t0 = time;
my $r = raw($p1, $healthz, from => '127.0.0.2', timeout => 1);
is($r->{status}, '000', 'while 16 slow-header connections hold every slot, healthz gets no answer');
my $answered_after;
while (time - $t0 < 6)
{
	$r = raw($p1, $healthz, from => '127.0.0.2', timeout => 1);
	if ($r->{status} eq '200')
	{
		$answered_after = time - $t0;
		last;
	}
	sleep 0.1;
}
ok(defined $answered_after && $answered_after < $header_timeout_ms / 1000 + 1.5,
	sprintf('healthz answered %s s after the slow clients took every slot (header deadline %.1f s)',
		defined $answered_after ? sprintf('%.2f', $answered_after) : 'never in 6', $header_timeout_ms / 1000));
my $res = slow_finish($slow);
is(scalar(keys %{ $res->{closed} }), 16, 'every slow-header connection was closed by the proxy')
  or diag($slow->{out});
my @times = sort { $a <=> $b } values %{ $res->{closed} };
ok(@times && $times[0] >= $header_timeout_ms - 100 && $times[-1] <= $header_timeout_ms + 1500,
	"slow-header connections closed between $times[0] and $times[-1] ms, not before the deadline")
  if @times;
like(slurp_file($p1->{log}), qr/warning remote=127\.0\.0\.1:\d+ request headers not complete after \d+ ms; connection closed/,
	'each closed connection is logged');

# the next request on a kept-alive connection gets a header deadline too
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p1->{port}, Proto => 'tcp');
	local $SIG{PIPE} = 'IGNORE';
	syswrite($s, "GET /healthz HTTP/1.1\r\nHost: pay\r\n\r\n");
	my $first = '';
	my $sel = IO::Select->new($s);
	while ($first !~ /\r\n\r\n.*\}/s && $sel->can_read(3))
	{
		last unless sysread($s, my $buf, 4096);
		$first .= $buf;
	}
	like($first, qr{\AHTTP/1\.1 200 }, 'kept-alive connection: first request answered');
	unlike($first, qr/^Connection: close/mi, 'kept-alive connection: stays open');
	my $start = time;
	syswrite($s, "GET /healthz HTTP/1.1\r\n");
	my $eof = 0;
	while (time - $start < 6)
	{
		if (!defined syswrite($s, "X-Trickle: 1\r\n")) { $eof = 1; last; }
		if ($sel->can_read(0.25))
		{
			my $n = sysread($s, my $buf, 4096);
			if (!$n) { $eof = 1; last; }
		}
	}
	my $took = time - $start;
	ok($eof && $took < $header_timeout_ms / 1000 + 1.5,
		sprintf('kept-alive connection trickling its next request\'s headers: closed after %.2f s', $took));
	close $s;
}

# over TLS the deadline covers the handshake: a client that connects and sends nothing
my ($cert, $key) = ("$tmp/cert.pem", "$tmp/key.pem");
IPC::Run::run(
	[
		'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', $key, '-out', $cert,
		'-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'
	],
	'>', \$out, '2>', \$err) or die "openssl req failed: $err";
my $ptls = start_proxy('tls', "--tls-cert=$cert", "--tls-key=$key", '--header-timeout-ms=1000',
	'--request-timeout-ms=8000');
IPC::Run::run([ 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', $cert,
		"https://127.0.0.1:$ptls->{port}/healthz" ], '>', \$out, '2>', \$err);
is($out, '200', 'TLS control: healthz over HTTPS answers');
$r = raw($ptls, '', timeout => 6);
ok($r->{eof} && $r->{seconds} < 2.5,
	sprintf('TLS connection that never starts its handshake: closed after %.2f s (header deadline 1 s)', $r->{seconds}));

# ---------------------------------------------------------------------------
# Connections per client address: beyond the limit, refused; others served
# ---------------------------------------------------------------------------
my $p2 = start_proxy('perclient', '--max-connections-per-client=5', '--header-timeout-ms=20000');
$slow = slow_start($p2, '127.0.0.1', 8, 200, 2500);
sleep 0.5;
$r = raw($p2, $healthz, from => '127.0.0.1', timeout => 2);
ok($r->{status} eq '000' && $r->{eof} && $r->{seconds} < 1,
	sprintf('a 6th connection from 127.0.0.1 while 5 are open: refused at once (status %s, %.2f s)',
		$r->{status}, $r->{seconds}));
$r = raw($p2, $healthz, from => '127.0.0.2', timeout => 2);
is($r->{status}, 200, 'another client (127.0.0.2) is still served');
$res = slow_finish($slow);
is($res->{open}, 5, '5 of 8 connections from one address stayed open');
is(scalar(grep { $_ < 1000 } values %{ $res->{closed} }), 3, 'the 3 beyond the limit were closed at once')
  or diag($slow->{out});
# MHD counts a connection until its thread has been joined: allow it a moment
for (1 .. 20)
{
	$r = raw($p2, $healthz);
	last if $r->{status} eq '200';
	sleep 0.1;
}
is($r->{status}, 200, 'once they are gone, 127.0.0.1 is served again');

# ---------------------------------------------------------------------------
# Ambiguous framing and Host (RFC 9112 §6.3, §3.2): 400 before the body is
# read, no SQL call, and the connection is closed after the answer
# ---------------------------------------------------------------------------
my $p3 = start_proxy('framing');

my $calls_before = calls();
$r = raw($p3, "POST /callbacks/control HTTP/1.1\r\nHost: pay\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
is($r->{status}, 200, 'control: a well-formed raw request is served');
is($r->{json}{body_md5}, md5_hex('abc'), 'control: its body reached SQL');
is(calls(), $calls_before + 1, 'control: one SQL call');

# the request after a refusal must not be read: the bytes after a broken
# framing cannot be told apart from a request smuggled in the body
my $smuggled = "POST /callbacks/smuggled HTTP/1.1\r\nHost: pay\r\nContent-Length: 1\r\n\r\nx";
$calls_before = calls();
for my $case (
	[ 'two Content-Length headers with different values',
		"Content-Length: 3\r\nContent-Length: " . (3 + length $smuggled) . "\r\n", "abc$smuggled" ],
	[ 'two equal Content-Length headers', "Content-Length: 3\r\nContent-Length: 3\r\n", "abc$smuggled" ],
	[ 'Content-Length and Transfer-Encoding: chunked',
		"Content-Length: 8\r\nTransfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n$smuggled" ],
	[ 'Transfer-Encoding that does not end with chunked', "Transfer-Encoding: gzip\r\n", "abc$smuggled" ],
	[ 'two Transfer-Encoding headers', "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
		"3\r\nabc\r\n0\r\n\r\n$smuggled" ])
{
	my ($name, $headers, $body) = @$case;
	$r = raw($p3, "POST /callbacks/framing HTTP/1.1\r\nHost: pay\r\n$headers\r\n$body");
	is($r->{status}, 400, "$name: 400");
	is_deeply($r->{json} && [ sort keys %{ $r->{json} } ], ['error'], "$name: error JSON")
	  and is($r->{json}{error}{code}, 'invalid_request', "$name: code invalid_request");
	like($r->{data}, qr/^Connection: close\r$/mi, "$name: Connection: close");
	ok($r->{eof} && $r->{responses} == 1, "$name: one answer, then the connection is closed");
}
$r = raw($p3, "POST /callbacks/framing HTTP/1.1\r\nHost: pay\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n$smuggled");
is($r->{status}, 501, 'Transfer-Encoding gzip, chunked: 501');
is($r->{json}{error}{code}, 'not_implemented', 'Transfer-Encoding gzip, chunked: code not_implemented');
ok($r->{eof} && $r->{responses} == 1, 'Transfer-Encoding gzip, chunked: one answer, then closed');
$r = raw($p3, "POST /callbacks/framing HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
is($r->{status}, 400, 'Transfer-Encoding in HTTP/1.0: 400');
$r = raw($p3, "POST /callbacks/framing HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc$smuggled");
is($r->{status}, 400, 'HTTP/1.1 without Host: 400');
is($r->{json}{error}{message}, 'HTTP/1.1 request without a Host header', 'HTTP/1.1 without Host: says why');
ok($r->{eof} && $r->{responses} == 1, 'HTTP/1.1 without Host: one answer, then closed');
$r = raw($p3, "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
is($r->{status}, 400, 'two Host headers: 400');
is($r->{json}{error}{code}, 'invalid_request', 'two Host headers: code invalid_request');
is(calls(), $calls_before, 'no refused request (and nothing smuggled behind one) reached SQL');

# what MHD already refuses itself, and what stays allowed
$r = raw($p3, "POST /callbacks/framing HTTP/1.1\r\nHost: pay\r\nContent-Length: 3, 3\r\n\r\nabc");
is($r->{status}, 400, 'a Content-Length list: 400 (libmicrohttpd refuses it itself)');
$r = raw($p3, "POST /callbacks/http10 HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
is($r->{status}, 200, 'HTTP/1.0 without Host is served');
$r = raw($p3, "POST /callbacks/chunked HTTP/1.1\r\nHost: pay\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
is($r->{status}, 200, 'Transfer-Encoding: chunked alone is served');
is($r->{json}{body_md5}, md5_hex('abc'), 'chunked body reached SQL');
like(slurp_file($p3->{log}), qr/access remote=127\.0\.0\.1:\d+ method=POST path=\/callbacks\/framing status=400 .*code=invalid_request/,
	'refusals are in the access log');

# ---------------------------------------------------------------------------
# JSON nested 100,000 deep: the proxy does not parse bodies; it passes it to
# SQL byte for byte and answers what SQL answers
# ---------------------------------------------------------------------------
my $deep = ('{"a":' x 100_000) . '1' . ('}' x 100_000);
$calls_before = calls();
$r = raw($p3, "POST /callbacks/deep HTTP/1.1\r\nHost: pay\r\nContent-Type: application/json\r\n"
	  . "Content-Length: " . length($deep) . "\r\nConnection: close\r\n\r\n$deep", timeout => 20);
is($r->{status}, 200, 'JSON nested 100,000 deep: the SQL function\'s answer, not a 500 of the proxy');
is($r->{json}{body_md5}, md5_hex($deep), 'JSON nested 100,000 deep: reached SQL byte for byte');
is(calls(), $calls_before + 1, 'JSON nested 100,000 deep: one SQL call');
unlike(slurp_file($p3->{log}), qr/ error /, 'no error in the proxy log');

# ---------------------------------------------------------------------------
# Requests per client address: a token bucket of 3, refilled at 2 per second.
# The 4th request at once from one address is 429 with Retry-After and the
# JSON error shape, before any SQL; another address is not affected; after
# a pause the first address is served again.
# ---------------------------------------------------------------------------
my $p4 = start_proxy('client_rate', '--client-rate=2', '--client-burst=3');
my $callback = "POST /callbacks/rate HTTP/1.1\r\nHost: pay\r\nContent-Type: application/json\r\n"
  . "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
$calls_before = calls();
my @statuses = map { raw($p4, $callback, from => '127.0.0.3', timeout => 2)->{status} } 1 .. 3;
is("@statuses", '200 200 200', 'client rate: a burst of 3 is served');
$r = raw($p4, $callback, from => '127.0.0.3', timeout => 2);
is($r->{status}, 429, 'client rate: the 4th at once is 429');
like($r->{data}, qr/\r\nRetry-After: 1\r\n/i, 'client rate: with Retry-After');
is($r->{json}{error}{code}, 'rate_limited', 'client rate: JSON error code rate_limited');
is(calls(), $calls_before + 3, 'client rate: the refused request reached no SQL');
is(raw($p4, $callback, from => '127.0.0.4', timeout => 2)->{status}, 200, 'client rate: another address is served');
sleep 0.6;
is(raw($p4, $callback, from => '127.0.0.3', timeout => 2)->{status}, 200, 'client rate: served again after a pause');
like(slurp_file($p4->{log}), qr/client_rate=2 client_burst=3/, 'client rate: the settings are logged at start');

for my $p (@proxies)
{
	$p->{h}->signal('TERM');
	$p->{h}->finish;
	is($p->{h}->full_result(0), 0, "$p->{name}: exited 0 on SIGTERM");
}
$node->stop;
done_testing();
