# The dispatcher refuses to connect to a loopback, link-local or private
# address unless pay.allow_private_destinations is on, whatever name resolves
# to it: the check is on the resolved address, as curl opens the socket.  A
# refused send is a dead letter with the reason recorded.  The URLs here are
# set while the setting is on (set-time checks would refuse the literal
# address, and localhost), then the setting is turned off for the running
# dispatcher (SIGHUP).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Socket qw(getaddrinfo getnameinfo NI_NUMERICHOST AF_UNSPEC SOCK_STREAM);
use Test::More;
use Time::HiRes qw(usleep);
use PayDispatcherTest;

# A host name the set-time check cannot know, that resolves to loopback
# (/etc/hosts names the machine so on most systems); localhost otherwise.
sub loopback_name
{
	open my $fh, '<', '/etc/hosts' or return 'localhost';
	while (<$fh>)
	{
		s/#.*//;
		my ($addr, @names) = split;
		next unless $addr && $addr =~ /^127\./;
		for my $n (@names)
		{
			next if $n =~ /(^|\.)localhost$|^ip6-/i;
			my ($err, @res) = getaddrinfo($n, '80', { family => AF_UNSPEC, socktype => SOCK_STREAM });
			next if $err || !@res;
			my @ips = map { (getnameinfo($_->{addr}, NI_NUMERICHOST))[1] } @res;
			return $n unless grep { !/^(127\.|::1$)/ } @ips;
		}
	}
	return 'localhost';
}

my $port = start_peer();
my $port2 = start_peer();    # first contacted when refused: no kept-alive connection to it
my $name = loopback_name();
note("loopback name: $name");
my $node = pay_node('destinations', q{
pay.notify_schedule = '200ms,200ms'
pay.retry_jitter = 0
pay.breaker_failures = 1
});

# Set while allowed: by address, by name, and a PSP by name (on another port).
notify_merchant($node, 'byip', "http://127.0.0.1:$port/ok/byip", 'secret-byip');
notify_merchant($node, 'byname', "http://$name:$port/ok/byname", 'secret-byname');
$node->safe_psql('postgres', "SELECT pay.create_gateway('gw', 'generic', 'http://$name:$port2/json/gw')");

# Allowed: delivered (the peer answers on every one of these URLs).
sub pay_order
{
	my ($merchant, $no) = @_;
	$node->safe_psql('postgres',
		"SELECT pay.pay_with_balance((pay.create_order('$merchant', '$no', 1000, 'USD')).id, 'wallet:$merchant')");
	return $node->safe_psql('postgres', "SELECT max(id) FROM pay.outbox WHERE destination = 'merchant:$merchant'");
}
my %before = (byip => pay_order('byip', 'A-1'), byname => pay_order('byname', 'A-2'));
ok(wait_for_sql($node, q{SELECT bool_and(state = 'done') FROM pay.outbox}, 30),
	'allowed: notifications by address and by name are delivered');
my $requests = peer_get($port, '/_stats')->{requests};

# Off for the running dispatcher, through the configuration file and SIGHUP.
$node->safe_psql('postgres', 'ALTER SYSTEM SET pay.allow_private_destinations = off');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_for_sql($node, q{SELECT NOT current_setting('pay.allow_private_destinations')::boolean}, 10),
	'the setting is off');
sleep 1;    # the worker reloads when its latch is set by SIGHUP

my ($rc, $out, $err) = $node->psql('postgres', "SELECT pay.create_merchant('late', 'Late', 'http://127.0.0.1:$port/ok/late')");
like($err, qr/notify_url must not point to a loopback address: 127\.0\.0\.1/, 'set time: a loopback address is refused');
($rc, $out, $err) = $node->psql('postgres', "SELECT pay.create_merchant('late', 'Late', 'http://localhost:$port/ok/late')");
like($err, qr/notify_url must not point to the local host: localhost/, 'set time: localhost is refused');

# Send time: whatever the name, the address it resolves to is refused.
my %refused = (byip => pay_order('byip', 'B-1'), byname => pay_order('byname', 'B-2'));
my $psp = $node->safe_psql('postgres', q{
SELECT pay.enqueue_psp_request((pay.create_order('byip', 'B-3', 1000, 'USD', gateway => 'gw')).id, 'create_payment')});
ok(wait_for_sql($node, q{SELECT bool_and(state IN ('done', 'dead')) FROM pay.outbox}, 30), 'every request ends');
for my $case ([byip => $refused{byip}], [byname => $refused{byname}], ['psp by name' => $psp])
{
	my ($what, $id) = @$case;
	is($node->safe_psql('postgres', "SELECT state || ':' || attempts FROM pay.outbox WHERE id = $id"), 'dead:1',
		"$what: refused at once, a dead letter (no retry)");
	like($node->safe_psql('postgres', "SELECT last_error FROM pay.outbox WHERE id = $id"),
		qr/^refused to connect to (127\.\d+\.\d+\.\d+|::1), a loopback address \(pay\.allow_private_destinations is off\)/,
		"$what: the error names the address and the setting");
	is($node->safe_psql('postgres', "SELECT string_agg(outcome || ':' || (error LIKE 'refused to connect to %'), ',')
	  FROM pay.outbox_attempts WHERE outbox_id = $id"), 'dead:true', "$what: the attempt is recorded with the reason");
}
is(peer_get($port, '/_stats')->{requests}, $requests, 'nothing reached the peer on kept-alive connections');
is(peer_get($port2, '/_stats')->{requests}, 0, 'nor on new ones');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pay.circuit_breakers WHERE state <> 'closed'}), '0',
	'a refusal does not open a circuit');

# On again: the same rows, re-driven, are delivered.
$node->safe_psql('postgres', 'ALTER SYSTEM RESET pay.allow_private_destinations');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
sleep 1;
$node->safe_psql('postgres', "SELECT pay.redrive(id) FROM pay.outbox WHERE id IN ($refused{byip}, $refused{byname}, $psp)");
ok(wait_for_sql($node, "SELECT bool_and(state = 'done') FROM pay.outbox WHERE id IN ($refused{byip}, $refused{byname}, $psp)", 30),
	'allowed again: the re-driven requests are delivered');

done_testing();
