# test/t/010_proxy.pl — pay-proxy over real HTTP(S), against a cluster whose
# pay.handle_callback / pay.api_* are stubs with the real signatures:
# the stubs echo what they received, raise chosen
# SQLSTATEs or sleep, so every route, limit and mapping of the proxy can be
# checked without the extension.  Needs curl and openssl (test/install-deps).
use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use Encode qw(decode_utf8);
use File::Basename qw(dirname);
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
my $MiB = 1024 * 1024;

# ---------------------------------------------------------------------------
# Build, --help and flag errors
# ---------------------------------------------------------------------------
my ($out, $err) = ('', '');
my $built = IPC::Run::run([ 'make', '-s', '-C', "$top/proxy" ], '>', \$out, '2>', \$err);
ok($built && -x $proxy_bin, 'make -C proxy builds pay-proxy (-Wall -Wextra -Werror)')
  or diag("$out$err");
BAIL_OUT('pay-proxy did not build') unless $built && -x $proxy_bin;

IPC::Run::run([ $proxy_bin, '--help' ], '>', \$out, '2>', \$err);
is($? >> 8, 0, '--help exits 0');
like($out, qr/--pool-size.*--statement-timeout-ms.*--request-timeout-ms.*--max-body-bytes.*--tls-cert.*--tls-key/s,
	'--help lists the flags');
like($out, qr/PAY_PROXY_DSN.*PAY_PROXY_LISTEN/s, '--help names the environment variables');

for my $bad ([ '--pool-size=0', qr/invalid value for --pool-size/ ],
	[ '--bogus', qr/unknown flag/ ],
	[ '--tls-cert=/nonexistent', qr/--tls-cert and --tls-key must be given together/ ],
	[ '--listen=nocolon', qr/invalid listen address/ ])
{
	IPC::Run::run([ $proxy_bin, $bad->[0] ], '>', \$out, '2>', \$err);
	is($? >> 8, 2, "$bad->[0] exits 2");
	like($err, $bad->[1], "$bad->[0] says why");
}

# ---------------------------------------------------------------------------
# A cluster with stub functions in schema pay (no pay extension)
# ---------------------------------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('proxy');
$node->init;
$node->append_conf('postgresql.conf', "max_connections = 50\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE proxytest');
$node->safe_psql('proxytest', <<'SQL');
CREATE SCHEMA pay;
CREATE TABLE pay.calls (id serial PRIMARY KEY, fn text, arg text, pid int);

-- the input is named raw_body: PL/pgSQL refuses an IN and an OUT parameter both named body
CREATE FUNCTION pay.handle_callback(provider text, headers jsonb, raw_body text)
RETURNS TABLE (http_status integer, content_type text, body text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pay.calls (fn, arg, pid) VALUES ('handle_callback', provider, pg_backend_pid());
  CASE provider
  WHEN 'slow' THEN
    PERFORM pg_sleep(raw_body::float8);
  WHEN 'teapot' THEN
    RETURN QUERY SELECT 418, 'text/plain; charset=utf-8', 'short and stout';
    RETURN;
  WHEN 'nocontent' THEN
    RETURN QUERY SELECT 204, NULL::text, NULL::text;
    RETURN;
  WHEN 'norow' THEN
    RETURN;
  WHEN 'badstatus' THEN
    RETURN QUERY SELECT 99, 'text/plain', 'x';
    RETURN;
  WHEN 'crlf' THEN
    RETURN QUERY SELECT 200, E'text/plain\r\nX-Injected: 1', 'x';
    RETURN;
  WHEN 'boom' THEN
    RAISE EXCEPTION 'secret internal detail password=hunter2';
  ELSE
    NULL;
  END CASE;
  RETURN QUERY SELECT 200, 'application/json',
    jsonb_build_object('provider', provider, 'headers', headers,
                       'body_length', octet_length(raw_body), 'body_md5', md5(raw_body),
                       'body', raw_body)::text;
END $$;

CREATE FUNCTION pay.api_create_payment(headers jsonb, raw_body text)
RETURNS TABLE (http_status integer, content_type text, body text)
LANGUAGE plpgsql AS $$
DECLARE
  b jsonb;
BEGIN
  INSERT INTO pay.calls (fn, arg, pid) VALUES ('api_create_payment', raw_body, pg_backend_pid());
  b := raw_body::jsonb;
  IF b ? 'raise' AND b ? 'detail' THEN
    RAISE EXCEPTION USING ERRCODE = b->>'raise', MESSAGE = b->>'message', DETAIL = b->>'detail';
  ELSIF b ? 'raise' THEN
    RAISE EXCEPTION USING ERRCODE = b->>'raise', MESSAGE = b->>'message';
  END IF;
  RETURN QUERY SELECT 201, 'application/json',
    jsonb_build_object('id', 42, 'merchant_order_no', b->'merchant_order_no',
                       'amount', b->'amount', 'currency', b->'currency',
                       'metadata', b->'metadata',
                       'idempotency_key', headers->>'Idempotency-Key')::text;
END $$;

-- the create's second call (it waits for the PSP in pay): 201 with the
-- order, or 202 with Location for an order number "pending"
CREATE FUNCTION pay.api_await_payment(headers jsonb, raw_body text)
RETURNS TABLE (http_status integer, content_type text, response_body text, location text)
LANGUAGE plpgsql AS $$
DECLARE
  b jsonb := raw_body::jsonb;
BEGIN
  RETURN QUERY SELECT CASE WHEN b->>'merchant_order_no' = 'pending' THEN 202 ELSE 201 END, 'application/json',
    jsonb_build_object('id', 42, 'merchant_order_no', b->'merchant_order_no',
                       'amount', b->'amount', 'currency', b->'currency',
                       'metadata', b->'metadata',
                       'idempotency_key', headers->>'Idempotency-Key', 'waited', true)::text,
    CASE WHEN b->>'merchant_order_no' = 'pending' THEN '/api/v1/payments/42' END;
END $$;

CREATE FUNCTION pay.api_get_payment(headers jsonb, id text)
RETURNS TABLE (http_status integer, content_type text, body text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pay.calls (fn, arg, pid) VALUES ('api_get_payment', id, pg_backend_pid());
  IF id = 'missing' THEN
    RETURN QUERY SELECT 404, 'application/json', '{"error":{"code":"not_found","message":"no such payment"}}';
    RETURN;
  END IF;
  RETURN QUERY SELECT 200, 'application/json',
    jsonb_build_object('id', id, 'merchant', headers->>'X-Pay-Merchant')::text;
END $$;
SQL
my $dsn = $node->connstr('proxytest');

# number of SQL calls the stubs have seen
sub calls
{
	return $node->safe_psql('proxytest', 'SELECT count(*) FROM pay.calls');
}

# ---------------------------------------------------------------------------
# Helpers: start a proxy, talk HTTP with curl
# ---------------------------------------------------------------------------
my @proxies;
my $file_seq = 0;

# start_proxy(name, flags => [...], env => {...}, tls => 1) — a running proxy on a free port
sub start_proxy
{
	my ($name, %opt) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $log = "$tmp/$name.log";
	my %env = (PAY_PROXY_DSN => $dsn, PAY_PROXY_LISTEN => "127.0.0.1:$port", %{ $opt{env} // {} });
	local @ENV{ keys %env } = values %env;
	my $h = IPC::Run::start([ $proxy_bin, @{ $opt{flags} // [] } ],
		'<', \undef, '>', "$tmp/$name.out", '2>', $log);
	my $p = {
		name => $name, h => $h, port => $port, log => $log, responses => 0,
		base => ($opt{tls} ? 'https' : 'http') . "://127.0.0.1:$port"
	};
	for (1 .. 200)
	{
		last if -s $log && slurp_file($log) =~ /listening on/;
		sleep 0.05;
	}
	like(slurp_file($log), qr/info pay-proxy listening on 127\.0\.0\.1:$port/, "$name started on port $port");
	push @proxies, $p;
	return $p;
}

# http_start(proxy, method, path, body => bytes, headers => [...], curl => [...]) — a running curl
sub http_start
{
	my ($p, $method, $path, %opt) = @_;
	my $n = ++$file_seq;
	my %r = (proxy => $p, body_file => "$tmp/resp$n.body", head_file => "$tmp/resp$n.head");
	my @cmd = ('curl', '-sS', '--path-as-is', '-o', $r{body_file}, '-D', $r{head_file},
		'-w', '%{http_code}', '--max-time', $opt{timeout} // 30);
	push @cmd, $method eq 'HEAD' ? ('-I') : ('-X', $method);
	if (defined $opt{body})
	{
		my $f = "$tmp/req$n.body";
		open my $fh, '>:raw', $f or die $!;
		print $fh $opt{body};
		close $fh;
		push @cmd, '--data-binary', "\@$f";
	}
	push @cmd, map { ('-H', $_) } @{ $opt{headers} // [] };
	push @cmd, @{ $opt{curl} // [] }, $p->{base} . $path;
	$r{out} = '';
	$r{err} = '';
	$r{start} = time;
	$r{h} = IPC::Run::start(\@cmd, '<', \undef, '>', \$r{out}, '2>', \$r{err});
	return \%r;
}

# http_finish(handle) — {status, headers (lower-case names), body, exit, err, seconds, json}
sub http_finish
{
	my ($r) = @_;
	$r->{h}->finish;
	$r->{exit} = $r->{h}->result(0);
	$r->{seconds} = time - $r->{start};
	$r->{status} = $r->{out};
	$r->{body} = -e $r->{body_file} ? slurp_file($r->{body_file}) : '';
	$r->{headers} = {};
	if (-e $r->{head_file})
	{
		my @blocks = grep { /\S/ } split /\r\n\r\n/, slurp_file($r->{head_file});
		my @lines = split /\r\n/, ($blocks[-1] // '');
		shift @lines;
		for (@lines)
		{
			my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
			$r->{headers}{ lc $k } = $v;
		}
	}
	$r->{json} = eval { $json->decode($r->{body}) } if $r->{body} =~ /^\s*[{\[]/;
	$r->{proxy}{responses}++ if $r->{status} ne '000';
	return $r;
}

# http(...) — http_start + http_finish
sub http
{
	return http_finish(http_start(@_));
}

# error_is(response, status, code, test name) — the proxy's JSON error shape
sub error_is
{
	my ($r, $status, $code, $name) = @_;
	is($r->{status}, $status, "$name: status $status");
	is($r->{headers}{'content-type'}, 'application/json', "$name: JSON content type");
	ok(ref $r->{json} eq 'HASH' && ref $r->{json}{error} eq 'HASH'
		  && keys %{ $r->{json} } == 1 && join(',', sort keys %{ $r->{json}{error} }) eq 'code,field,message,sqlstate',
		"$name: body is exactly {\"error\":{\"code\",\"sqlstate\",\"field\",\"message\"}}")
	  or diag($r->{body});
	is($r->{json}{error}{code}, $code, "$name: code $code");
}

my $internal_body = '{"error":{"code":"internal","sqlstate":null,"field":null,"message":"internal error"}}';

# ---------------------------------------------------------------------------
# The main proxy: configured by environment only (PAY_PROXY_DSN, PAY_PROXY_LISTEN)
# ---------------------------------------------------------------------------
my $p1 = start_proxy('main',
	env => {
		PAY_PROXY_POOL_SIZE => 2, PAY_PROXY_POOL_WAIT_MS => 10000,
		PAY_PROXY_STATEMENT_TIMEOUT_MS => 1000, PAY_PROXY_REQUEST_TIMEOUT_MS => 8000
	});

# GET /healthz, HEAD /healthz
my $r = http($p1, 'GET', '/healthz');
is($r->{status}, 200, 'GET /healthz: 200');
is($r->{body}, '{"status":"ok"}', 'GET /healthz: {"status":"ok"}');
is($r->{headers}{'content-type'}, 'application/json', 'GET /healthz: JSON');
$r = http($p1, 'HEAD', '/healthz');    # curl -I writes the headers where the body would go
is($r->{status}, 200, 'HEAD /healthz: 200');
unlike($r->{body}, qr/"status"/, 'HEAD /healthz: no body');

# POST /callbacks/{gateway}: provider, headers (case kept, repeated joined, escaped), raw body
my $sig = 't=1700000000,v1=SIGNATURE-SECRET-5f2a';
my $body = "amount=12.34&currency=CNY&sign=a%2Bb+c\r\nline2\t\"quoted\" back\\slash "
  . "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 BODY-MARKER-77";
my $calls_before = calls();
$r = http($p1, 'POST', '/callbacks/stripe', body => $body,
	headers => [
		"Stripe-Signature: $sig", 'X-MiXeD-Case: v1',
		'X-Rep: first', 'x-rep: second', "X-Escapes: q\"uo\\te\tTAB",
		"X-Utf8: caf\xc3\xa9 \xe2\x9c\x93", 'Content-Type: application/x-www-form-urlencoded'
	]);
is($r->{status}, 200, 'callback: 200 from handle_callback');
is($r->{headers}{'content-type'}, 'application/json', 'callback: content type as returned');
is(calls(), $calls_before + 1, 'callback: exactly one SQL call');
my $echo = $r->{json};
is($echo->{provider}, 'stripe', 'callback: gateway name from the path is $1');
is($echo->{body_length}, length($body), 'callback: body length byte for byte');
is($echo->{body_md5}, md5_hex($body), 'callback: body md5 byte for byte');
is($echo->{body}, decode_utf8($body), 'callback: body text identical');
my $hj = $echo->{headers};
is($hj->{'Stripe-Signature'}, $sig, 'headers: signature header passed');
is($hj->{'X-MiXeD-Case'}, 'v1', 'headers: name case preserved');
ok(!exists $hj->{'x-mixed-case'}, 'headers: no lower-cased duplicate');
is($hj->{'X-Rep'}, 'first, second', 'headers: repeated header joined with ", " under the first spelling');
ok(!exists $hj->{'x-rep'}, 'headers: repeated header appears once');
is($hj->{'X-Escapes'}, "q\"uo\\te\tTAB", 'headers: quote, backslash and tab escaped and restored');
is($hj->{'X-Utf8'}, decode_utf8("caf\xc3\xa9 \xe2\x9c\x93"), 'headers: UTF-8 value passed');
is($hj->{'Content-Type'}, 'application/x-www-form-urlencoded', 'headers: Content-Type passed');

$r = http($p1, 'POST', '/callbacks/alipay_cn-1.x', body => '');
is($r->{status}, 200, 'callback: empty body accepted');
is($r->{json}{body_length}, 0, 'callback: empty body is ""');
is($r->{json}{body_md5}, md5_hex(''), 'callback: empty body md5');
is($r->{json}{provider}, 'alipay_cn-1.x', 'callback: gateway name with _ . - digits');

# exact status, content type and body from SQL
$r = http($p1, 'POST', '/callbacks/teapot', body => 'x');
is($r->{status}, 418, 'SQL status passed as is (418)');
is($r->{headers}{'content-type'}, 'text/plain; charset=utf-8', 'SQL content type passed as is');
is($r->{body}, 'short and stout', 'SQL body passed as is');
$r = http($p1, 'POST', '/callbacks/nocontent', body => 'x');
is($r->{status}, 204, 'SQL 204 with NULL body');
is($r->{body}, '', 'NULL body is empty');
ok(!exists $r->{headers}{'content-type'}, 'NULL content type sends no Content-Type');

# functions misbehaving: 500 without internals
for my $case ([ 'norow', 'no row' ], [ 'badstatus', 'status 99' ], [ 'crlf', 'CR LF in content type' ],
	[ 'boom', 'unexpected exception' ])
{
	$r = http($p1, 'POST', "/callbacks/$case->[0]", body => 'x');
	is($r->{status}, 500, "$case->[1]: 500");
	is($r->{body}, $internal_body, "$case->[1]: fixed internal body");
	ok(!exists $r->{headers}{'x-injected'}, "$case->[1]: no injected header");
}
unlike($r->{body}, qr/hunter2|secret/, '500 body leaks no message');
like(slurp_file($p1->{log}), qr/error route=callback sqlstate=P0001 message="secret internal detail password=hunter2"/,
	'the real error goes to the proxy log only');

# POST /api/v1/payments and GET /api/v1/payments/{id}
my $order = '{"merchant_order_no":"M-1001","amount":1234,"currency":"CNY","metadata":{"a":[1,2]}}';
$r = http($p1, 'POST', '/api/v1/payments', body => $order,
	headers => [ 'Idempotency-Key: idem-abc-1', 'Content-Type: application/json', 'X-Pay-Merchant: m1' ]);
is($r->{status}, 201, 'POST /api/v1/payments: 201');
is_deeply($r->{json},
	{
		id => 42, merchant_order_no => 'M-1001', amount => 1234, currency => 'CNY',
		metadata => { a => [ 1, 2 ] }, idempotency_key => 'idem-abc-1', waited => JSON::PP::true
	},
	'POST /api/v1/payments: body and Idempotency-Key reached SQL, the answer is the second call\'s');
ok(!exists $r->{headers}{location}, 'POST /api/v1/payments: 201 without Location');
$r = http($p1, 'POST', '/api/v1/payments', body => '{"merchant_order_no":"pending"}');
is($r->{status}, 202, 'POST /api/v1/payments: the second call\'s 202 passed');
is($r->{headers}{location}, '/api/v1/payments/42', 'POST /api/v1/payments: with its Location');
$r = http($p1, 'GET', '/api/v1/payments/ord_123-4.5', headers => ['X-Pay-Merchant: m1']);
is($r->{status}, 200, 'GET /api/v1/payments/{id}: 200');
is_deeply($r->{json}, { id => 'ord_123-4.5', merchant => 'm1' }, 'GET /api/v1/payments/{id}: id and headers reached SQL');
$r = http($p1, 'GET', '/api/v1/payments/missing');
is($r->{status}, 404, 'GET /api/v1/payments/{id}: SQL-chosen 404 passed');
is($r->{body}, '{"error":{"code":"not_found","message":"no such payment"}}', 'SQL-chosen body passed');

# ---------------------------------------------------------------------------
# 404, 405, invalid path segments: no SQL call
# ---------------------------------------------------------------------------
$calls_before = calls();
for my $path ('/nope', '/callbacks', '/healthz/', '/api/v1', '/api/v1/payments-x', '/')
{
	error_is(http($p1, 'GET', $path), 404, 'not_found', "GET $path");
}
for my $case ([ 'GET', '/callbacks/stripe', 'POST' ],
	[ 'PUT', '/callbacks/stripe', 'POST' ],
	[ 'POST', '/healthz', 'GET, HEAD' ],
	[ 'DELETE', '/api/v1/payments', 'GET, HEAD, POST' ],
	[ 'POST', '/api/v1/payments/7', 'GET, HEAD' ],
	[ 'GET', '/api/v1/payments/7/refunds', 'POST' ],
	[ 'GET', '/api/v1/payments/7/cancel', 'POST' ],
	[ 'POST', '/api/v1/refunds/7', 'GET, HEAD' ],
	[ 'DELETE', '/api/v1/payments/7', 'GET, HEAD' ])
{
	$r = http($p1, $case->[0], $case->[1], $case->[0] eq 'GET' ? () : (body => 'x'));
	error_is($r, 405, 'method_not_allowed', "$case->[0] $case->[1]");
	is($r->{headers}{allow}, $case->[2], "$case->[0] $case->[1]: Allow: $case->[2]");
}
for my $path ('/callbacks/', '/callbacks/' . ('g' x 65), '/callbacks/a%20b', '/callbacks/a%2Fb',
	'/callbacks/a/b', '/callbacks/a%00b', "/callbacks/caf%C3%A9", '/callbacks/a;b')
{
	error_is(http($p1, 'POST', $path, body => 'x'), 400, 'invalid_request', "POST $path");
}
error_is(http($p1, 'GET', '/api/v1/payments/bad%20id'), 400, 'invalid_request', 'GET bad payment id');
error_is(http($p1, 'GET', '/api/v1/payments/' . ('9' x 129)), 400, 'invalid_request', 'GET 129-character id');
is(calls(), $calls_before, 'no SQL call for 404, 405 or invalid path segments');
$r = http($p1, 'POST', '/callbacks/' . ('g' x 64), body => 'x');
is($r->{status}, 200, '64-character gateway name accepted');

# ---------------------------------------------------------------------------
# Invalid UTF-8 (body or header) → 400 without SQL; body size limit → 413
# ---------------------------------------------------------------------------
$calls_before = calls();
for my $case ([ "\xff", 'byte FF' ], [ "ok\xc0\xafok", 'overlong /' ], [ "\xed\xa0\x80", 'UTF-16 surrogate' ],
	[ "\xf4\x90\x80\x80", 'above U+10FFFF' ], [ "end\xe2\x82", 'truncated sequence' ],
	[ "a\x00b", 'NUL byte' ], [ "\x80", 'lone continuation byte' ], [ "\xf8\x88\x80\x80\x80", '5-byte form' ])
{
	error_is(http($p1, 'POST', '/callbacks/stripe', body => $case->[0]), 400, 'invalid_request',
		"callback body with $case->[1]");
}
error_is(http($p1, 'POST', '/api/v1/payments', body => "{\"a\":\"\xfe\"}"), 400, 'invalid_request',
	'payment body with invalid UTF-8');
error_is(http($p1, 'POST', '/callbacks/stripe', body => 'x', headers => ["X-Bad: \xff\xfe"]), 400,
	'invalid_request', 'header value with invalid UTF-8');
is(calls(), $calls_before, 'invalid UTF-8 never reaches SQL');
like(slurp_file($p1->{log}), qr/warning path=\/callbacks\/stripe .*request body is not valid UTF-8 text/,
	'invalid UTF-8 body is logged');

my $exact = ("\xe4\xb8\xad" x 349525) . 'a';    # 1048576 bytes of valid UTF-8
is(length($exact), $MiB, 'test body is exactly 1 MiB');
$r = http($p1, 'POST', '/callbacks/stripe', body => $exact);
is($r->{status}, 200, 'body of exactly --max-body-bytes (1 MiB) accepted');
is($r->{json}{body_md5}, md5_hex($exact), '1 MiB body arrived byte for byte');
$calls_before = calls();
error_is(http($p1, 'POST', '/callbacks/stripe', body => $exact . 'b'), 413, 'payload_too_large',
	'1 MiB + 1 byte (Content-Length)');
error_is(http($p1, 'POST', '/callbacks/stripe', body => $exact . 'b', headers => ['Transfer-Encoding: chunked']),
	413, 'payload_too_large', '1 MiB + 1 byte (chunked)');
error_is(http($p1, 'POST', '/api/v1/payments', body => 'x' x (3 * $MiB)), 413, 'payload_too_large',
	'3 MiB payment body');
is(calls(), $calls_before, 'oversized bodies never reach SQL');

# ---------------------------------------------------------------------------
# SQLSTATE → HTTP mapping
# ---------------------------------------------------------------------------
my $msg = "bad \"amount\"\nsecond line \\ caf\xc3\xa9";
for my $case ([ '22023', 400, 'invalid_request' ], [ '22003', 400, 'invalid_request' ],
	[ '22P02', 400, 'invalid_request' ], [ 'PY002', 422, 'idempotency_conflict' ],
	[ '23505', 409, 'duplicate' ], [ '42501', 403, 'forbidden' ],
	[ 'PY010', 401, 'unauthorized' ], [ 'PY011', 401, 'unauthorized' ], [ 'PY012', 401, 'unauthorized' ],
	[ 'PY029', 429, 'rate_limited' ], [ 'PY001', 409, 'illegal_transition' ],
	[ 'PY003', 422, 'insufficient_funds' ], [ 'PY005', 422, 'refund_exceeds_paid' ])
{
	my ($state, $status, $code) = @$case;
	$r = http($p1, 'POST', '/api/v1/payments',
		body => $json->encode({ raise => $state, message => decode_utf8($msg) }));
	error_is($r, $status, $code, "SQLSTATE $state");
	is($r->{json}{error}{message}, decode_utf8($msg), "SQLSTATE $state: the error's message, escaped and intact");
	is($r->{json}{error}{sqlstate}, $state, "SQLSTATE $state: named in the body");
}
$r = http($p1, 'POST', '/api/v1/payments', body => 'this is not json');
error_is($r, 400, 'invalid_request', 'malformed JSON (22P02 from the cast)');
like($r->{json}{error}{message}, qr/invalid input syntax for type json/, 'malformed JSON: PostgreSQL message');

for my $case ([ '7', '7' ], [ ' 120 ', '120' ], [ 'soon', '1' ], [ '-5', '1' ], [ '3.5', '1' ], [ undef, '1' ],
	[ '99999999', '86400' ])
{
	my ($detail, $want) = @$case;
	$r = http($p1, 'POST', '/api/v1/payments',
		body => $json->encode({ raise => 'PY029', message => 'slow down', defined $detail ? (detail => $detail) : () }));
	is($r->{status}, 429, 'PY029: 429 (detail ' . ($detail // 'none') . ')');
	is($r->{headers}{'retry-after'}, $want, 'PY029: Retry-After ' . $want . ' for detail ' . ($detail // 'none'));
}
$r = http($p1, 'POST', '/api/v1/payments', body => $json->encode({ raise => '22023', message => 'x' }));
ok(!exists $r->{headers}{'retry-after'}, 'no Retry-After outside 429');

for my $state ('XX000', 'P0001', '23503', '40001', '42883', 'PY004')
{
	$r = http($p1, 'POST', '/api/v1/payments',
		body => $json->encode({ raise => $state, message => "internal secret $state table pay.secrets" }));
	is($r->{status}, 500, "SQLSTATE $state: 500");
	is($r->{body}, $internal_body, "SQLSTATE $state: no internals in the body");
}
like(slurp_file($p1->{log}), qr/sqlstate=XX000 message="internal secret XX000 table pay.secrets"/,
	'500: real message logged');

# statement_timeout → 504, and the connection is usable afterwards
$r = http($p1, 'POST', '/callbacks/slow', body => '5');
error_is($r, 504, 'timeout', 'statement over --statement-timeout-ms (1000)');
ok($r->{seconds} < 4, sprintf('statement timeout answered in %.2f s', $r->{seconds}));
$r = http($p1, 'POST', '/callbacks/after-timeout', body => 'x');
is($r->{status}, 200, 'next call after a statement timeout works');

# ---------------------------------------------------------------------------
# Concurrency: 20 parallel requests through a pool of 2
# ---------------------------------------------------------------------------
$node->safe_psql('proxytest', "DELETE FROM pay.calls");
my $t0 = time;
my @running = map { http_start($p1, 'POST', '/callbacks/slow', body => '0.3') } 1 .. 20;
my @done = map { http_finish($_) } @running;
my $elapsed = time - $t0;
is(scalar(grep { $_->{status} eq '200' } @done), 20, '20 parallel requests with a pool of 2: all 200');
my $pids = $node->safe_psql('proxytest', "SELECT count(DISTINCT pid) FROM pay.calls WHERE arg = 'slow'");
ok($pids <= 2, "20 parallel requests used $pids database connections (pool size 2)");
ok($elapsed >= 2.7, sprintf('requests queued for the pool: 20 x 0.3 s over 2 connections took %.2f s', $elapsed));
note(sprintf('20 x 0.3 s requests, pool 2: %.2f s wall', $elapsed));

# ---------------------------------------------------------------------------
# Pool exhaustion and the request deadline (a pool of 1, 300 ms wait)
# ---------------------------------------------------------------------------
my $p2 = start_proxy('small',
	flags => [
		"--dsn=$dsn", '--pool-size', '1', '--pool-wait-ms=300',
		'--request-timeout-ms=2000', '--statement-timeout-ms=5000'
	],
	env => { PAY_PROXY_DSN => 'dbname=does_not_exist_the_flag_wins' });
my $slow = http_start($p2, 'POST', '/callbacks/slow', body => '1.5');
sleep 0.4;
$r = http($p2, 'POST', '/callbacks/stripe', body => 'x');
error_is($r, 503, 'unavailable', 'pool exhausted');
is($r->{headers}{'retry-after'}, '1', 'pool exhausted: Retry-After: 1');
ok($r->{seconds} >= 0.25 && $r->{seconds} < 1.5, sprintf('pool exhausted: waited %.2f s (--pool-wait-ms=300)', $r->{seconds}));
$r = http($p2, 'GET', '/healthz');
is($r->{status}, 503, 'healthz while the pool is exhausted: 503');
$slow = http_finish($slow);
is($slow->{status}, 200, 'the request holding the connection completes');
is(http($p2, 'POST', '/callbacks/stripe', body => 'x')->{status}, 200, 'pool free again: 200');

# a body trickling in slower than --request-timeout-ms: the connection is closed
$r = http($p2, 'POST', '/callbacks/stripe', body => 'y' x 200_000, curl => [ '--limit-rate', '20K' ]);
is($r->{status}, '000', 'slow upload past the request deadline: connection closed, no response');
ok($r->{seconds} < 7, sprintf('slow upload cut off after %.2f s (would take 10 s)', $r->{seconds}));
like(slurp_file($p2->{log}), qr/access .*path=\/callbacks\/stripe status=0 .*code=request_timeout/,
	'slow upload logged as request_timeout');

# ---------------------------------------------------------------------------
# The database going away and coming back
# ---------------------------------------------------------------------------
is(http($p1, 'POST', '/callbacks/warm', body => 'x')->{status}, 200, 'pool warm before restart');
$node->restart;
$r = http($p1, 'POST', '/callbacks/after-restart', body => 'x');
is($r->{status}, 200, 'first request after a database restart: 200 (dead idle connection replaced)');
like(slurp_file($p1->{log}), qr/database connection closed by the server while idle; reconnecting/,
	'dead idle connection noticed');

$node->stop('fast');
$r = http($p1, 'GET', '/healthz');
is($r->{status}, 503, 'database down: healthz 503');
is($r->{body}, '{"status":"unavailable"}', 'database down: healthz body');
$r = http($p1, 'POST', '/callbacks/stripe', body => 'x');
error_is($r, 503, 'unavailable', 'database down: callback');
is($r->{headers}{'retry-after'}, '1', 'database down: Retry-After: 1');
$r = http($p1, 'POST', '/api/v1/payments', body => $order);
error_is($r, 503, 'unavailable', 'database down: payment');
$node->start;
$r = http($p1, 'GET', '/healthz');
is($r->{status}, 200, 'database back: healthz 200');
$r = http($p1, 'POST', '/callbacks/stripe', body => 'back');
is($r->{status}, 200, 'database back: callback 200');
is($r->{json}{body}, 'back', 'database back: body passed');

# ---------------------------------------------------------------------------
# Access log
# ---------------------------------------------------------------------------
my @access = grep { / access / } split /\n/, slurp_file($p1->{log});
is(scalar(@access), $p1->{responses}, "one access-log line per request ($p1->{responses})");
my @bad_lines = grep {
	!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z access remote=127\.0\.0\.1:\d+ method=[A-Z]+ path=(?:"(?:[^"\\]|\\.)*"|[^\s"]+) status=\d{3} bytes=\d+ duration_ms=\d+( code=[a-z_]+)?$/
} @access;
is(scalar(@bad_lines), 0, 'every access line has time, remote, method, path, status, bytes, duration_ms')
  or diag(join "\n", @bad_lines[ 0 .. ($#bad_lines < 4 ? $#bad_lines : 4) ]);
ok((grep { /method=POST path=\/callbacks\/stripe status=413 bytes=\d+ duration_ms=\d+ code=payload_too_large/ } @access),
	'413 logged with its code');
my $full_log = slurp_file($p1->{log});
unlike($full_log, qr/SIGNATURE-SECRET/, 'signature header values never logged');
unlike($full_log, qr/BODY-MARKER|M-1001|idem-abc/, 'bodies and other headers never logged');
$r = http($p1, 'GET', '/nope%0Ainjected%20access%20status=200');
is($r->{status}, 404, 'path with an encoded newline: 404');
unlike(slurp_file($p1->{log}), qr/^injected/m, 'decoded newline in a path cannot forge a log line');

# ---------------------------------------------------------------------------
# TLS: TLS 1.2 and 1.3 work, TLS 1.1 is refused
# ---------------------------------------------------------------------------
my ($cert, $key) = ("$tmp/cert.pem", "$tmp/key.pem");
IPC::Run::run(
	[
		'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', $key, '-out', $cert,
		'-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'
	],
	'>', \$out, '2>', \$err) or die "openssl req failed: $err";
my $p3 = start_proxy('tls', tls => 1, flags => [ "--tls-cert=$cert", "--tls-key=$key" ]);
$r = http($p3, 'GET', '/healthz', curl => [ '--cacert', $cert ]);
is($r->{status}, 200, 'HTTPS healthz: 200');
$r = http($p3, 'POST', '/callbacks/stripe', body => $body, curl => [ '--cacert', $cert ]);
is($r->{json}{body_md5}, md5_hex($body), 'HTTPS callback: body byte for byte');
$r = http($p3, 'GET', '/healthz', curl => [ '--cacert', $cert, '-v', '--tlsv1.2', '--tls-max', '1.2' ]);
is($r->{status}, 200, 'TLS 1.2: 200');
like($r->{err}, qr/SSL connection using TLSv1\.2/, 'TLS 1.2 negotiated');
$r = http($p3, 'GET', '/healthz', curl => [ '--cacert', $cert, '-v', '--tlsv1.3' ]);
is($r->{status}, 200, 'TLS 1.3: 200');
like($r->{err}, qr/SSL connection using TLSv1\.3/, 'TLS 1.3 negotiated');
my @tls11 = ('--cacert', $cert, '--tlsv1.1', '--tls-max', '1.1', '--ciphers', 'DEFAULT@SECLEVEL=0');
$r = http($p3, 'GET', '/healthz', curl => [ '--cacert', $cert, '--tlsv1.1', '--tls-max', '1.1' ]);
is($r->{status}, '000', 'curl --tlsv1.1 --tls-max 1.1: no HTTP answer');
isnt($r->{exit}, 0, 'curl --tlsv1.1 --tls-max 1.1: fails');
$r = http($p3, 'GET', '/healthz', curl => \@tls11);
is($r->{status}, '000', 'TLS 1.1 even with a client that allows it (SECLEVEL=0): refused');
is($r->{exit}, 35, 'TLS 1.1: handshake failure (curl exit 35)');
# control: the same client command does speak TLS 1.1 to a server that offers it
my $cport = PostgreSQL::Test::Cluster::get_free_port();
my $control = IPC::Run::start(
	[
		'openssl', 's_server', '-accept', $cport, '-cert', $cert, '-key', $key, '-tls1_1',
		'-cipher', 'DEFAULT@SECLEVEL=0', '-www', '-naccept', '1'
	],
	'<', \undef, '>', \my $sout, '2>', \my $serr);
my $control_status = '000';
for (1 .. 40)
{
	sleep 0.1;
	my $c = http({ base => "https://127.0.0.1:$cport" }, 'GET', '/', curl => \@tls11);
	$control_status = $c->{status};
	last if $c->{exit} != 7;
}
$control->kill_kill;
SKIP:
{
	skip 'this OpenSSL cannot do TLS 1.1 at all; the refusal above proves less', 1
	  unless $control_status eq '200';
	is($control_status, '200', 'control: the TLS 1.1 client works against an openssl s_server offering TLS 1.1');
}
$r = http({ base => "http://127.0.0.1:$p3->{port}" }, 'GET', '/healthz');
is($r->{status}, '000', 'plain HTTP to the TLS port: no HTTP answer');

# ---------------------------------------------------------------------------
# SIGTERM with a request in flight: it completes, new connections are refused, exit 0
# ---------------------------------------------------------------------------
my $p4 = start_proxy('term', flags => ["--dsn=$dsn"]);
$slow = http_start($p4, 'POST', '/callbacks/slow', body => '1.5');
sleep 0.5;
$p4->{h}->signal('TERM');
sleep 0.2;
$r = http($p4, 'GET', '/healthz', timeout => 2);
is($r->{status}, '000', 'after SIGTERM: no new request served');
is($r->{exit}, 7, 'after SIGTERM: new connections refused at once (curl exit 7)');
$slow = http_finish($slow);
is($slow->{status}, 200, 'after SIGTERM: the request in flight completed with 200');
is($slow->{json}{provider}, 'slow', 'after SIGTERM: with its full body');
$p4->{h}->finish;
is($p4->{h}->full_result(0), 0, 'after SIGTERM: pay-proxy exited 0');
my $tlog = slurp_file($p4->{log});
like($tlog, qr/received SIGTERM: no new connections, finishing 1 requests in flight/, 'SIGTERM logged');
like($tlog, qr/access .*path=\/callbacks\/slow status=200.*\n.*info pay-proxy stopped\n\z/,
	'the in-flight request was logged before the proxy stopped');
@proxies = grep { $_ != $p4 } @proxies;

# every other proxy stops cleanly on SIGTERM too
for my $p (@proxies)
{
	$p->{h}->signal('TERM');
	$p->{h}->finish;
	is($p->{h}->full_result(0), 0, "$p->{name}: exited 0 on SIGTERM");
}

$node->stop;
done_testing();
