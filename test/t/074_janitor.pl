# Nothing left unknown: the real dispatcher against the fake PSP, whose
# callbacks are all lost on purpose (a "drop" callback fault: the PSP's
# state changes, pay never hears of it) and whose every answer comes 50 ms
# late.  Orders at Alipay, WeChat Pay and Stripe are paid there, closed
# there, or left unpaid and expired here (their close requests reach the
# PSP); one is paid there at the last second and expired here.  After
# pay.run_janitor and the dispatcher, every order paid at the PSP is paid
# here, every order closed there is cancelled here, the expired ones are
# closed there, the late payment is booked and refunded, and each order's
# ledger matches the PSP's state.  A refund whose request timed out at
# every attempt is queried and confirmed.
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
use Time::HiRes qw(sleep);
use PayDispatcherTest;

my $top = abs_path("$FindBin::Bin/../..");
my $fake_dir = "$top/test/fake_psp";
my $keys = "$fake_dir/keys";
my $json = JSON::PP->new->canonical;
my $cfg = $json->decode(slurp_file("$fake_dir/config.json"));
my $http = HTTP::Tiny->new(timeout => 30);

my $psp = start_fake_psp();
my $fake = $psp->{handle};
my $url = $psp->{url};
sub control { return $psp->{control}->(@_) }

# short retries, three attempts, requests that give up after 1.5 s
my $node = pay_node('janitor', q{
pay.psp_retry_base = '50ms'
pay.psp_attempts_max = 3
pay.retry_jitter = 0
pay.breaker_failures = 0
pay.http_timeout = '1500ms'
});
my $w = $cfg->{wechatpay};
$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('st', 'stripe', '$url');
SELECT pay.create_gateway('ali', 'alipay', '$url', '{"app_id": "$cfg->{alipay}{app_id}"}');
SELECT pay.create_gateway('wx', 'wechatpay', '$url', '{"mchid": "$w->{mchid}", "appid": "$w->{appid}",
  "serial_no": "$cfg->{pay}{wechat_merchant_serial}", "notify_url": "https://pay.example/callbacks/wx"}');
SELECT pay.set_secret('gateway:st', 'api_key', '$cfg->{stripe}{api_key}');
SELECT pay.set_secret('gateway:ali', 'private_key', pg_read_file('$keys/alipay_app_private.pem'));
SELECT pay.set_secret('gateway:ali', 'public_key', pg_read_file('$keys/alipay_platform_public.pem'));
SELECT pay.set_secret('gateway:wx', 'private_key', pg_read_file('$keys/wechat_merchant_private.pem'));
SELECT pay.set_secret('gateway:wx', 'platform_cert:$cfg->{pay}{wechat_platform_serial}',
                      pg_read_file('$keys/wechat_platform_cert.pem'));
SELECT pay.create_merchant('acme', 'ACME', '$url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
});

# every answer 50 ms late; every callback to pay lost
is(control('POST', '/control/faults', { latency_ms => 50 })->{latency_ms}, 50, 'the fake PSP answers 50 ms late');
control('POST', '/control/faults', { target => 'callback', path => '/callbacks/', mode => 'drop' });

sub psql { $node->safe_psql('postgres', $_[0]) }
sub quiet
{
	ok(wait_for_sql($node, q{SELECT NOT EXISTS (SELECT 1 FROM pay.outbox
	                          WHERE kind = 'psp_request' AND state IN ('pending', 'in_flight'))}, 60), $_[0]);
}

# The orders: creating one queues its create request.
my %gw = (A => 'ali', W => 'wx', S => 'st');
my %cur = (A => 'CNY', W => 'CNY', S => 'USD');
my %o;
my $amount = 1000;
for my $name (qw(A-paid A-closed A-expired A-late W-paid W-expired W-refund S-paid S-closed S-expired))
{
	my $p = substr($name, 0, 1);
	$amount += 111;
	$o{$name} = psql("SELECT id FROM pay.create_order('acme', '$name', $amount, '$cur{$p}', gateway => '$gw{$p}')");
}
quiet('the ten create requests are answered');
is(psql(q{SELECT count(*) FROM pay.orders WHERE status = 'pending' AND next_action IS NOT NULL}), '10',
	'every order is pending with the next action the PSP gave');

# What happens at the PSP, of which pay hears nothing.
sub psp_event
{
	my ($name, $event) = @_;
	my $p = substr($name, 0, 1);
	my $provider = { A => 'alipay', W => 'wechatpay', S => 'stripe' }->{$p};
	my $ref = $p eq 'W' ? sprintf('%06d', $o{$name}) : "$o{$name}";
	my ($amt) = psql("SELECT amount FROM pay.orders WHERE id = $o{$name}");
	my $out = control('POST', '/control/send', { provider => $provider, gateway => $gw{$p}, order_id => $ref,
		amount => $amt + 0, currency => $cur{$p}, event => $event, target => 'http://127.0.0.1:9' });
	return $out->{results}[0]{dropped} ? 'dropped' : 'sent';
}
is(psp_event('A-paid', 'paid'), 'dropped', 'Alipay: A-paid paid at the PSP, its callback lost');
is(psp_event('A-closed', 'closed'), 'dropped', 'Alipay: A-closed closed at the PSP, its callback lost');
is(psp_event('A-late', 'paid'), 'dropped', 'Alipay: A-late paid at the PSP at the last second, its callback lost');
is(psp_event('W-paid', 'paid'), 'dropped', 'WeChat Pay: W-paid paid, its callback lost');
is(psp_event('W-refund', 'paid'), 'dropped', 'WeChat Pay: W-refund paid, its callback lost');
is(psp_event('S-paid', 'paid'), 'dropped', 'Stripe: S-paid paid, its callback lost');
is(psp_event('S-closed', 'payment_intent.canceled'), 'dropped', 'Stripe: S-closed canceled at the PSP, its callback lost');
is(control('GET', '/control/requests?limit=0')->{counters}{'callbacks dropped'}, 7, 'seven callbacks lost');
is(psql(q{SELECT count(*) FROM pay.orders WHERE status = 'pending'}), '10', 'pay still has all ten pending');

# Expiry: the unpaid ones and A-late are cancelled here and closed there.
psql("UPDATE pay.orders SET expires_at = now() - interval '1 second'
       WHERE id IN ($o{'A-expired'}, $o{'A-late'}, $o{'W-expired'}, $o{'S-expired'})");
is(psql('SELECT pay.expire_orders()'), '4', 'four orders expire');
is(psql(q{SELECT count(*) FROM pay.outbox WHERE operation = 'close'}), '4', '... each with a close request');
quiet('the close requests are answered');
my $state = control('GET', '/control/state');
is($state->{alipay}{trades}{ $o{'A-expired'} }{status}, 'TRADE_CLOSED', 'Alipay closed A-expired');
is($state->{wechatpay}{trades}{ sprintf('%06d', $o{'W-expired'}) }{state}, 'CLOSED', 'WeChat Pay closed W-expired');
my ($s_expired) = @{ $state->{stripe}{by_order}{ $o{'S-expired'} } };
is($state->{stripe}{pis}{$s_expired}{status}, 'canceled', 'Stripe canceled the PaymentIntent of S-expired');
is(psql("SELECT state || ' ' || coalesce(last_status, 0) FROM pay.outbox WHERE order_id = $o{'A-late'} AND operation = 'close'"),
	'dead 200', 'Alipay refuses to close A-late: it is paid');

# The janitor asks about every order still pending (all created more than a
# second ago); the answers move them as the lost callbacks would have.
sleep(1.2);
is(psql(q{SELECT pay.run_janitor('1 second')}), '6', 'the janitor queues six queries');
is(psql(q{SELECT string_agg(o.merchant_order_no, ',' ORDER BY o.merchant_order_no)
            FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
           WHERE x.operation = 'query' AND x.idempotency_key LIKE '%janitor%'}),
	'A-closed,A-paid,S-closed,S-paid,W-paid,W-refund', '... about the six pending orders');
is(psql(q{SELECT pay.run_janitor('1 second')}), '0', 'running it again queues nothing while they are open');
quiet('the queries are answered');
is(psql(q{SELECT string_agg(merchant_order_no || ' ' || status, ', ' ORDER BY merchant_order_no) FROM pay.orders}),
	'A-closed cancelled, A-expired cancelled, A-late cancelled, A-paid paid, S-closed cancelled, S-expired cancelled, '
	. 'S-paid paid, W-expired cancelled, W-paid paid, W-refund paid',
	'every order paid at the PSP is paid here, every order closed there or expired here is cancelled');
like(psql("SELECT cause FROM pay.order_events WHERE order_id = $o{'A-paid'} AND to_status = 'paid'"),
	qr/^query \d+$/, 'the query moved it (the event says which)');
is(psql("SELECT kind FROM pay.anomalies WHERE order_id = $o{'A-late'}"), 'payment_after_cancelled',
	'A-late: the payment for the cancelled order is an anomaly');

# The ledger per order against the PSP's own state (what it holds for us:
# paid minus refunded).
sub psp_net
{
	my ($name) = @_;
	my $s = control('GET', '/control/state');
	my $p = substr($name, 0, 1);
	if ($p eq 'A')
	{
		my $t = $s->{alipay}{trades}{ $o{$name} };
		return defined $t->{paid_at} ? $t->{amount} - $t->{refunded} : 0;
	}
	if ($p eq 'W')
	{
		my $t = $s->{wechatpay}{trades}{ sprintf('%06d', $o{$name}) };
		return defined $t->{success_time} ? $t->{total} - $t->{refunded} : 0;
	}
	my $net = 0;
	for my $id (@{ $s->{stripe}{by_order}{ $o{$name} } // [] })
	{
		my $pi = $s->{stripe}{pis}{$id};
		$net += $pi->{amount_received} - $pi->{amount_refunded} if $pi->{status} eq 'succeeded';
	}
	return $net;
}
sub ledger_net
{
	my ($name) = @_;
	return psql(qq{SELECT coalesce(sum(e.amount), 0) FROM pay.postings p
	                 JOIN pay.entries e ON e.posting_id = p.id
	                 JOIN pay.accounts a ON a.id = e.account_id AND a.code LIKE 'merchant:%'
	                WHERE p.order_id = $o{$name}});
}
sub ledger_matches
{
	my ($what) = @_;
	my @off = grep { ledger_net($_) != psp_net($_) } sort keys %o;
	is(join(',', map { "$_: ours " . ledger_net($_) . ', PSP ' . psp_net($_) } @off), '', $what);
}
quiet('the automatic refund of A-late is answered');
is(psp_net('A-late'), 0, 'A-late was refunded at the PSP');
is(psql("SELECT psp_status FROM pay.refunds WHERE order_id = $o{'A-late'}"), 'succeeded', '... and the refund confirmed');
ledger_matches('every order\'s postings match the PSP\'s state');
is(psql('SELECT count(*) FROM pay.order_ledger_mismatches'), '0', 'no order\'s ledger disagrees with its status');

# A refund whose request times out at every attempt, after the PSP made it.
control('POST', '/control/faults', { path => '/v3/refund/', method => 'POST', mode => 'slow', delay_ms => 3000,
	after => JSON::PP::true, count => 3 });
my $refund = psql("SELECT pay.refund($o{'W-refund'}, 300)");
ok(wait_for_sql($node, qq{SELECT state = 'dead' FROM pay.outbox WHERE operation = 'refund' AND order_id = $o{'W-refund'}}, 60),
	'the refund request dies after its attempts');
like(psql("SELECT coalesce(last_status, 0) || ' ' || last_error FROM pay.outbox WHERE operation = 'refund' AND order_id = $o{'W-refund'}"),
	qr/^0 .*Timeout/i, '... all timed out');
is(psql("SELECT psp_status FROM pay.refunds WHERE id = $refund"), 'requested', 'its outcome is unknown');
is(psp_net('W-refund') - ledger_net('W-refund'), 0, 'the PSP did refund it (the first attempt took effect)');
sleep(1.2);
is(psql(q{SELECT pay.run_janitor('1 second')}), '1', 'the janitor queues one query');
is(psql("SELECT operation || ' ' || (params->>'refund_id') FROM pay.outbox WHERE idempotency_key LIKE '%query_refund%janitor%'"),
	"query_refund $refund", '... a query_refund naming the refund');
quiet('the query is answered');
is(psql("SELECT psp_status FROM pay.refunds WHERE id = $refund"), 'succeeded', 'the refund is confirmed');
is(psql(q{SELECT pay.run_janitor('1 second')}), '0', 'nothing is left unknown');
ledger_matches('every order\'s postings still match the PSP\'s state');
is(scalar @{ control('GET', '/control/effects')->{totals}{keys_with_more_than_one_effect} }, 0,
	'no key had two effects at the fake PSP');

$fake->signal('TERM');
$fake->finish;
$node->stop('immediate');
done_testing();
