# Alerts end to end: the dispatcher delivers one PSP request and gives up on
# another (a dead letter); pay.metrics() counts both, with their latency;
# the real Prometheus scrapes pay-proxy's GET /metrics and evaluates the
# shipped rules (contrib/prometheus/pay-alerts.yml); the real Alertmanager
# (Debian's prometheus-alertmanager) posts the firing PayDeadLetters alert
# to a webhook receiver on loopback (test/lib/http_peer.py).
use strict;
use warnings;
use Cwd qw(abs_path);
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

my $prometheus = '/usr/bin/prometheus';
my $alertmanager = '/usr/bin/prometheus-alertmanager';
plan skip_all => 'prometheus and prometheus-alertmanager are not installed (test/install-deps)'
  unless -x $prometheus && -x $alertmanager;

my $top = abs_path("$FindBin::Bin/../..");
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $http = HTTP::Tiny->new(timeout => 10);
my $json = JSON::PP->new->canonical;

my $port = start_peer();
my $url = "http://127.0.0.1:$port";
my $node = pay_node('alerts', q{
pay.breaker_failures = 0
});
sub q1 { return $node->safe_psql('postgres', shift) }

# --- a delivered PSP request and a dead letter -----------------------------------
q1(qq{
SELECT pay.create_merchant('shop', 'Shop');
SELECT pay.create_gateway('gj', 'generic', '$url/json/gj');
SELECT pay.create_gateway('g404', 'generic', '$url/status/404/psp');
SELECT pay.enqueue_psp_request((pay.create_order('shop', 'A-1', 1000, 'USD', gateway => 'gj')).id, 'create_payment');
SELECT pay.enqueue_psp_request((pay.create_order('shop', 'A-2', 1000, 'USD', gateway => 'g404')).id, 'create_payment');
});
ok(wait_for_sql($node, q{SELECT bool_and(state IN ('done', 'dead')) FROM pay.outbox}, 30), 'both PSP requests are finished');
is(q1(q{SELECT string_agg(destination || '=' || state, ',' ORDER BY destination) FROM pay.outbox}),
	'gateway:g404=dead,gateway:gj=done', 'one delivered, one dead letter');

# the dispatcher counts them (it counts after storing the outcome: wait for it)
my $metrics_sql = q{SELECT pay.metrics()};
ok(wait_for_sql($node, q{SELECT pay.metrics() LIKE '%pay_outbox_deliveries_total{kind="psp_request",outcome="dead"} 1%'}, 10),
	'the dispatcher counted the dead letter');
my $text = q1($metrics_sql);
like($text, qr/^pay_outbox_deliveries_total\{kind="psp_request",outcome="done"\} 1$/m, 'and the delivery');
like($text, qr/^pay_outbox_dead_letters 1$/m, 'the dead-letter gauge');
like($text, qr/^pay_psp_requests_total\{gateway="gj",operation="create_payment",outcome="done"\} 1$/m,
	'by gateway, operation and outcome: gj\'s');
like($text, qr/^pay_psp_requests_total\{gateway="g404",operation="create_payment",outcome="dead"\} 1$/m,
	'and g404\'s');
like($text, qr/^pay_psp_request_duration_seconds_count\{gateway="gj",operation="create_payment"\} 1$/m,
	'the latency of gj\'s request');
like($text, qr/^pay_psp_request_duration_seconds_bucket\{gateway="g404",operation="create_payment",le="\+Inf"\} 1$/m,
	'and of g404\'s (it answered)');
like($text, qr/^pay_psp_request_duration_seconds_sum\{gateway="gj",operation="create_payment"\} 0\.\d+$/m,
	'a sum in seconds');
my ($out, $err) = ('', '');
IPC::Run::run([ '/usr/bin/promtool', 'check', 'metrics' ], '<', \"$text\n", '>', \$out, '2>', \$err);
is($? >> 8, 0, 'promtool check metrics passes with PSP series too') or diag("$out$err");

# --- pay-proxy, Alertmanager, Prometheus -------------------------------------------
q1('CREATE ROLE proxy LOGIN IN ROLE pay_callback');
system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);
my $proxy = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$proxy_port",
		'--pool-size', '2'], '>', "$tmp/proxy.out", '2>', "$tmp/proxy.err");

sub write_file
{
	my ($path, $text) = @_;
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh $text;
	close $fh;
}

my $am_port = PostgreSQL::Test::Cluster::get_free_port();
write_file("$tmp/alertmanager.yml", <<"YML");
route:
  receiver: webhook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: '$url/ok/alertmanager'
        send_resolved: false
YML
my $am = IPC::Run::start([ $alertmanager, "--config.file=$tmp/alertmanager.yml", "--storage.path=$tmp/am",
		"--web.listen-address=127.0.0.1:$am_port", '--cluster.listen-address=' ],
	'>', "$tmp/am.out", '2>', "$tmp/am.err");

my $prom_port = PostgreSQL::Test::Cluster::get_free_port();
write_file("$tmp/prometheus.yml", <<"YML");
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - '$top/contrib/prometheus/pay-alerts.yml'
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$am_port']
scrape_configs:
  - job_name: pay
    static_configs:
      - targets: ['127.0.0.1:$proxy_port']
YML
my $prom = IPC::Run::start([ $prometheus, "--config.file=$tmp/prometheus.yml", "--storage.tsdb.path=$tmp/tsdb",
		"--web.listen-address=127.0.0.1:$prom_port" ],
	'>', "$tmp/prom.out", '2>', "$tmp/prom.err");

# --- the alert arrives at the webhook --------------------------------------------------
my $alert;
my $deadline = time + 50;
while (!$alert && time < $deadline)
{
	for my $req (@{ peer_get($port, '/_log') })
	{
		next unless $req->[1] =~ m{^/ok/alertmanager};
		my $msg = eval { $json->decode($req->[4]) } or next;
		($alert) = grep { $_->{labels}{alertname} eq 'PayDeadLetters' } @{ $msg->{alerts} // [] };
		last if $alert;
	}
	sleep 0.5 unless $alert;
}
ok($alert, 'Alertmanager posted PayDeadLetters to the webhook receiver')
  or diag(slurp_file("$tmp/prom.err") . slurp_file("$tmp/am.err"));
is($alert->{status}, 'firing', 'the alert is firing');
is($alert->{labels}{severity}, 'critical', 'with its severity');
like($alert->{annotations}{summary}, qr/^1 outbox row\(s\) gave up/, 'and its summary, with the count');

$prom->signal('TERM');
$am->signal('TERM');
$proxy->signal('TERM');
$_->finish for $prom, $am, $proxy;
$node->stop;
done_testing();
