# Metrics end to end: pay-proxy serves pay.metrics() at GET /metrics, the
# text passes promtool check metrics, and the real Prometheus server
# (Debian's prometheus package) scrapes it and answers, through its HTTP
# API, the count of what this test did: 3 callbacks accepted, 1 rejected.
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
use Time::HiRes qw(time sleep);

my $prometheus = '/usr/bin/prometheus';
my $promtool = '/usr/bin/promtool';
plan skip_all => 'prometheus is not installed (test/install-deps)' unless -x $prometheus && -x $promtool;

my $top = abs_path(dirname(__FILE__) . '/../..');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $http = HTTP::Tiny->new(timeout => 10);
my $json = JSON::PP->new->canonical;
my $secret = 'whsec_metrics_tap_0123456789';

my $node = PostgreSQL::Test::Cluster->new('metrics');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pay'
pay.master_key_file = '$top/test/keys/master-a.hex'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pay');
$node->safe_psql('postgres', 'CREATE ROLE proxy LOGIN IN ROLE pay_callback');
$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('stripe_m', 'stripe');
SELECT pay.set_secret('gateway:stripe_m', 'webhook_secret', '$secret');
SELECT pay.create_merchant('shop', 'Shop');
});
sub q1 { return $node->safe_psql('postgres', shift) }

# --- pay-proxy ----------------------------------------------------------------
system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);
my ($proxy_out, $proxy_err) = ('', '');
my $proxy = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$proxy_port",
		'--pool-size', '2'], '>', \$proxy_out, '2>', \$proxy_err);
my $proxy_url = "http://127.0.0.1:$proxy_port";
my $deadline = time + 30;
sleep 0.1 until ($http->get("$proxy_url/healthz")->{status} // 0) == 200 || time > $deadline;
is($http->get("$proxy_url/healthz")->{status}, 200, 'pay-proxy is up');

# A Stripe callback for an order, signed here (HMAC-SHA256 of "t.body").
sub stripe_callback
{
	my ($event_id, $order_id, $amount, $key) = @_;
	my $body = $json->encode({ id => $event_id, object => 'event', type => 'payment_intent.succeeded',
		data => { object => { id => "pi_$event_id", object => 'payment_intent', amount => $amount,
				amount_received => $amount, currency => 'usd', metadata => { order_id => "$order_id" } } } });
	my $t = time =~ s/\..*//r;
	my $sig = hmac_sha256_hex("$t.$body", $key);
	return $http->post("$proxy_url/callbacks/stripe_m", { content => $body,
			headers => { 'Content-Type' => 'application/json', 'Stripe-Signature' => "t=$t,v1=$sig" } })->{status};
}

my @status;
for my $i (1 .. 3)
{
	my $id = q1("SELECT id FROM pay.create_order('shop', 'M-$i', 1000, 'USD', gateway => 'stripe_m')");
	push @status, stripe_callback("evt_m_$i", $id, 1000, $secret);
}
my $bad = q1("SELECT id FROM pay.create_order('shop', 'M-bad', 1000, 'USD', gateway => 'stripe_m')");
push @status, stripe_callback('evt_m_bad', $bad, 1000, 'whsec_wrong');
is(join(',', @status), '200,200,200,401', 'three callbacks accepted, one refused for its signature');

# --- GET /metrics ---------------------------------------------------------------
my $res = $http->get("$proxy_url/metrics");
is($res->{status}, 200, 'GET /metrics answers 200');
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'in the Prometheus text format');
like($res->{content}, qr/^pay_callbacks_total\{gateway="stripe_m",verdict="accepted"\} 3$/m,
	'the proxy serves pay.metrics(): 3 accepted');
like($res->{content}, qr/^pay_signature_failures_total\{gateway="stripe_m"\} 1$/m, 'one signature failure');
like($res->{content}, qr/^pay_orders_created_total 4$/m, 'four orders created');

my ($out, $err) = ('', '');
IPC::Run::run([ $promtool, 'check', 'metrics' ], '<', \$res->{content}, '>', \$out, '2>', \$err);
is($? >> 8, 0, 'promtool check metrics finds nothing to complain about') or diag("$out$err");

# --- the real Prometheus server scrapes the proxy -----------------------------
my $prom_port = PostgreSQL::Test::Cluster::get_free_port();
my $prom_url = "http://127.0.0.1:$prom_port";
open(my $fh, '>', "$tmp/prometheus.yml") or die $!;
print $fh <<"YML";
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pay
    static_configs:
      - targets: ['127.0.0.1:$proxy_port']
YML
close $fh;
my ($prom_out, $prom_err) = ('', '');
my $prom = IPC::Run::start([ $prometheus, "--config.file=$tmp/prometheus.yml",
		"--storage.tsdb.path=$tmp/tsdb", "--web.listen-address=127.0.0.1:$prom_port" ],
	'>', \$prom_out, '2>', \$prom_err);

# Prometheus' answer to an instant query: the value of its first series, or undef.
sub prom_value
{
	my ($query) = @_;
	my $r = $http->get("$prom_url/api/v1/query?query=" . uri_escape($query));
	return undef unless ($r->{status} // 0) == 200;
	my $data = $json->decode($r->{content});
	my $result = $data->{data}{result};
	return @$result ? $result->[0]{value}[1] : undef;
}

sub uri_escape
{
	my ($s) = @_;
	$s =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord($1))/ge;
	return $s;
}

my $query = 'pay_callbacks_total{gateway="stripe_m",verdict="accepted"}';
my $value;
$deadline = time + 40;
until (defined($value = prom_value($query)) || time > $deadline) { sleep 0.5 }
is($value, '3', 'Prometheus scraped pay-proxy: callbacks accepted = 3');
is(prom_value('up{job="pay"}'), '1', 'the scrape target is up');
is(prom_value('pay_callbacks_total{gateway="stripe_m",verdict="rejected"}'), '1', 'and 1 rejected');

# one more callback shows up at the next scrape
my $id = q1("SELECT id FROM pay.create_order('shop', 'M-4', 1000, 'USD', gateway => 'stripe_m')");
is(stripe_callback('evt_m_4', $id, 1000, $secret), 200, 'a fourth callback accepted');
$deadline = time + 20;
until (($value = prom_value($query) // '') eq '4' || time > $deadline) { sleep 0.5 }
is($value, '4', 'Prometheus sees it: callbacks accepted = 4');

$prom->signal('TERM');
$prom->finish;
$proxy->signal('TERM');
$proxy->finish;
$node->stop;

# --- without shared_preload_libraries: pay.metrics() says so, the gauges still come --
my $bare = PostgreSQL::Test::Cluster->new('metrics_bare');
$bare->init;
$bare->start;
$bare->safe_psql('postgres', 'CREATE EXTENSION pay');
$bare->safe_psql('postgres', "SELECT pay.create_merchant('shop', 'Shop'); SELECT pay.create_order('shop', 'B-1', 100, 'USD')");
my $text = $bare->safe_psql('postgres', 'SELECT pay.metrics()') . "\n";
like($text, qr/^pay_metrics_available 0$/m, 'not preloaded: pay_metrics_available 0');
like($text, qr/^# pay is not in shared_preload_libraries: its counters do not exist/m, 'and a comment says why');
unlike($text, qr/^pay_callbacks_total/m, 'no counters pretend to be zero');
like($text, qr/^pay_outbox_pending 0$/m, 'the gauges are read all the same');
IPC::Run::run([ $promtool, 'check', 'metrics' ], '<', \$text, '>', \$out, '2>', \$err);
is($? >> 8, 0, 'and it passes promtool check metrics') or diag("$out$err");
$bare->stop;
done_testing();
