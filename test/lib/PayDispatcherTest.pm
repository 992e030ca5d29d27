# test/lib/PayDispatcherTest.pm — what the dispatcher's TAP tests share: a
# preloaded node with the secret store set up, the loopback HTTP peer
# (test/lib/http_peer.py) with its statistics, the fake PSP (test/fake_psp)
# with its control API, and pay-proxy in front of a node.
package PayDispatcherTest;

use strict;
use warnings;
use Exporter 'import';
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(pay_node start_peer peer_get peer_post wait_for_sql form_fields canonical
  notify_merchant dispatcher_pid start_fake_psp start_pay_proxy);

my $lib = dirname(abs_path(__FILE__));

# A started node with pay preloaded, pay.database = postgres, a master key
# file, private destinations allowed (the peer listens on 127.0.0.1), the
# extension installed, and the given extra settings.
sub pay_node
{
	my ($name, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $key = $node->basedir . '/master.key';
	open my $fh, '>', $key or die "cannot write $key: $!";
	print $fh ('0123456789abcdef' x 4) . "\n";
	close $fh;
	chmod 0600, $key;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pay'
pay.database = 'postgres'
pay.master_key_file = '$key'
log_min_messages = log
max_connections = 40
pay.allow_private_destinations = on
} . ($extra // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pay');
	return $node;
}

# Start the peer (extra arguments go to http_peer.py); returns its port.
sub start_peer
{
	my (@args) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $port_file = "$dir/port";
	my $h = IPC::Run::start(['/usr/bin/python3', "$lib/http_peer.py", '--port-file', $port_file, @args],
		'>', "$dir/out", '2>', "$dir/err");
	my $deadline = time + 10;
	usleep(20_000) while !-e $port_file && time < $deadline;
	die "the HTTP peer did not start: " . `cat $dir/err` unless -e $port_file;
	open my $fh, '<', $port_file or die;
	my $port = <$fh>;
	chomp $port;
	push @PayDispatcherTest::peers, $h;
	return $port;
}

END { local $?; $_->kill_kill for @PayDispatcherTest::peers; }

# GET a control path of the peer, decoded from JSON.
sub peer_get
{
	my ($port, $path) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$port$path");
	die "peer $path: $r->{status} $r->{content}" unless $r->{success};
	return decode_json($r->{content});
}

# POST a control path of the peer (e.g. /_mode/name?status/500).
sub peer_post
{
	my ($port, $path) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->post("http://127.0.0.1:$port$path");
	die "peer $path: $r->{status}" unless $r->{success};
}

# Poll until a query returns 't' (or time runs out); returns whether it did.
sub wait_for_sql
{
	my ($node, $sql, $timeout) = @_;
	my $deadline = time + ($timeout // 30);
	while (time < $deadline)
	{
		return 1 if $node->safe_psql('postgres', $sql) eq 't';
		usleep(20_000);
	}
	return 0;
}

# The fields of a form-encoded body.
sub form_fields
{
	my ($body) = @_;
	my %f;
	for my $pair (split /&/, $body)
	{
		my ($k, $v) = split /=/, $pair, 2;
		for ($k, $v) { $_ //= ''; tr/+/ /; s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; }
		$f{$k} = $v;
	}
	return %f;
}

# The canonical parameter string (API.md): keys in byte order, empty values and sign left out.
sub canonical
{
	my (%f) = @_;
	return join '&', map { "$_=$f{$_}" } grep { $_ ne 'sign' && $_ ne 'sign_type' && $f{$_} ne '' } sort keys %f;
}

# A merchant with a notify_url and an api_secret.
sub notify_merchant
{
	my ($node, $code, $url, $secret) = @_;
	$node->safe_psql('postgres', qq{
SELECT pay.create_merchant('$code', 'Merchant $code', '$url');
SELECT pay.set_secret('merchant:$code', 'api_secret', '$secret');
SELECT pay.open_account('wallet:$code', 'USD', true);
SELECT pay.open_account('funding:$code', 'USD');
SELECT pay.post('fund:$code', '[{"account":"wallet:$code","amount":100000000},{"account":"funding:$code","amount":-100000000}]');
});
}

# The pid of the dispatcher ('' if none).
sub dispatcher_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		q{SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE backend_type = 'pay dispatcher'});
}

# The fake PSP (test/fake_psp/fake_psp.py --port 0 @args), started and
# listening: { handle, port, url, control => sub ($method, $path, $body) }
# where control calls its control API, dies on an answer that is not 2xx
# and returns the decoded JSON.  Stop it with ->{handle}->signal('TERM').
sub start_fake_psp
{
	my (@args) = @_;
	my $dir = abs_path("$lib/../fake_psp");
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(['/usr/bin/python3', "$dir/fake_psp.py", '--port', '0', @args], '>', \$out, '2>', \$err);
	my $deadline = time + 30;
	$h->pump until $out =~ /listening (\d+)/ || time > $deadline;
	my ($port) = $out =~ /listening (\d+)/;
	ok($port, 'fake PSP listening on ' . ($port // "nothing: $err"));
	my $url = "http://127.0.0.1:" . ($port // 0);
	my $http = HTTP::Tiny->new(timeout => 30);
	my $json = JSON::PP->new->canonical;
	my $control = sub {
		my ($method, $path, $body) = @_;
		my $r = $http->request($method, "$url$path",
			{ $body ? (content => $json->encode($body), headers => { 'Content-Type' => 'application/json' }) : () });
		die "$path: $r->{status} $r->{content}" unless $r->{success};
		return $json->decode($r->{content});
	};
	return { handle => $h, port => $port, url => $url, control => $control };
}

# pay-proxy built and started in front of $node as a role "proxy" (created
# here, member of pay_callback and pay_app), up when this returns:
# { handle, url }.  Stop it with ->{handle}->kill_kill.
sub start_pay_proxy
{
	my ($node, @args) = @_;
	my $top = abs_path("$lib/../..");
	$node->safe_psql('postgres', 'CREATE ROLE proxy LOGIN IN ROLE pay_callback, pay_app');
	system('make', '-s', '-C', "$top/proxy") == 0 or BAIL_OUT('cannot build pay-proxy');
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $dsn = sprintf('host=%s port=%d dbname=postgres user=proxy', $node->host, $node->port);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(["$top/proxy/pay-proxy", '--dsn', $dsn, '--listen', "127.0.0.1:$port",
			'--pool-size', '4', @args], '>', \$out, '2>', \$err);
	my $url = "http://127.0.0.1:$port";
	my $http = HTTP::Tiny->new(timeout => 30);
	my $deadline = time + 30;
	until (($http->get("$url/healthz")->{status} // 0) == 200 || time > $deadline) { usleep(100_000) }
	is($http->get("$url/healthz")->{status}, 200, 'pay-proxy is up');
	return { handle => $h, url => $url };
}

1;
