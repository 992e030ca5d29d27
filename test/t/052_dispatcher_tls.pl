# TLS: a peer with a certificate from a self-signed CA is trusted through
# pay.http_ca_file; with another CA, or a certificate for another host name,
# the attempt fails (peer and host verification are always on).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PayDispatcherTest;

my $dir = PostgreSQL::Test::Utils::tempdir();
sub make_ca
{
	my ($name) = @_;
	system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $dir/$name.key "
		  . "-out $dir/$name.pem -days 2 -subj /CN=$name 2>/dev/null") == 0 or die "CA $name";
}
sub make_cert
{
	my ($name, $ca, $san) = @_;
	system("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $dir/$name.key "
		  . "-out $dir/$name.csr -subj /CN=$name 2>/dev/null") == 0 or die "CSR $name";
	open my $fh, '>', "$dir/$name.ext" or die;
	print $fh "subjectAltName=$san\n";
	close $fh;
	system("openssl x509 -req -in $dir/$name.csr -CA $dir/$ca.pem -CAkey $dir/$ca.key -CAcreateserial "
		  . "-out $dir/$name.pem -days 2 -extfile $dir/$name.ext 2>/dev/null") == 0 or die "cert $name";
}
make_ca('test-ca');
make_ca('other-ca');
make_cert('server', 'test-ca', 'IP:127.0.0.1');
make_cert('elsewhere', 'test-ca', 'DNS:elsewhere.example');

my $port = start_peer('--cert', "$dir/server.pem", '--key', "$dir/server.key");
my $port2 = start_peer('--cert', "$dir/elsewhere.pem", '--key', "$dir/elsewhere.key");
my $node = pay_node('tls', qq{
pay.http_ca_file = '$dir/test-ca.pem'
pay.notify_schedule = '200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms'
pay.breaker_failures = 0
pay.retry_jitter = 0
});
notify_merchant($node, 'tls1', "https://127.0.0.1:$port/ok/tls1", 's1');
notify_merchant($node, 'tls2', "https://127.0.0.1:$port2/ok/tls2", 's2');

sub pay_one
{
	my ($m, $no) = @_;
	my $id = $node->safe_psql('postgres', "SELECT (pay.mark_paid((pay.create_order('$m', '$no', 100, 'USD')).id, '$no', 100, 'USD')).id");
	return $node->safe_psql('postgres', "SELECT id FROM pay.outbox WHERE order_id = $id");
}

my $a = pay_one('tls1', 'T-1');
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE id = $a", 10),
	'https with a certificate from the CA in pay.http_ca_file: delivered');

$node->safe_psql('postgres', "ALTER SYSTEM SET pay.http_ca_file = '$dir/other-ca.pem'; SELECT pg_reload_conf()");
sleep 1;
my $b = pay_one('tls1', 'T-2');
ok(wait_for_sql($node, "SELECT attempts >= 2 FROM pay.outbox WHERE id = $b", 10), 'with another CA the attempts fail');
like($node->safe_psql('postgres', "SELECT state || ': ' || last_error FROM pay.outbox WHERE id = $b"),
	qr/^pending: .*(SSL certificate problem|certificate verify failed|unable to get local issuer)/i,
	'the error is a certificate verification failure, and it is retried');

my $c = pay_one('tls2', 'T-3');
$node->safe_psql('postgres', "ALTER SYSTEM SET pay.http_ca_file = '$dir/test-ca.pem'; SELECT pg_reload_conf()");
ok(wait_for_sql($node, "SELECT state = 'done' FROM pay.outbox WHERE id = $b", 10), 'with the right CA again the retry succeeds');
ok(wait_for_sql($node, "SELECT attempts >= 2 FROM pay.outbox WHERE id = $c", 10), 'a certificate for another host fails');
like($node->safe_psql('postgres', "SELECT last_error FROM pay.outbox WHERE id = $c"),
	qr/(subject name|does not match|no alternative certificate)/i, 'host name verification is on');

$node->safe_psql('postgres', "ALTER SYSTEM SET pay.http_ca_file = '$dir/missing.pem'; SELECT pg_reload_conf()");
sleep 1;
my $d = pay_one('tls1', 'T-4');
ok(wait_for_sql($node, "SELECT attempts >= 1 AND last_error IS NOT NULL FROM pay.outbox WHERE id = $d", 10), 'a missing CA file fails the attempt');
like($node->safe_psql('postgres', "SELECT last_error FROM pay.outbox WHERE id = $d"), qr/(CA cert|certificate)/i,
	'saying so');
is($node->safe_psql('postgres', "SELECT count(*) FROM pay.outbox_attempts WHERE outbox_id = $c AND http_status IS NOT NULL"), '0',
	'no attempt to the peer whose certificate names another host got an HTTP answer');
$node->stop('immediate');
done_testing();
