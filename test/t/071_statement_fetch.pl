# Statements fetched end to end: pay.fetch_statement queues the first step,
# the dispatcher sends each step to the fake PSP (test/fake_psp, its own
# crypto, Python's zipfile), and the bill of the fake's own records is
# imported and reconciled against our books.  Alipay: the signed
# alipay.data.dataservice.bill.downloadurl.query, then the zip (a binary
# answer) whose 业务明细 member is imported.  WeChat Pay: the trade bill, its
# SHA-1 checked.
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

my $node = pay_node('statements', q{
pay.psp_retry_base = '50ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
});
my $w = $cfg->{wechatpay};
$node->safe_psql('postgres', qq{
SELECT pay.create_gateway('ali', 'alipay', '$url', '{"app_id": "$cfg->{alipay}{app_id}"}');
SELECT pay.create_gateway('wx', 'wechatpay', '$url', '{"mchid": "$w->{mchid}", "appid": "$w->{appid}",
  "serial_no": "$cfg->{pay}{wechat_merchant_serial}", "notify_url": "https://pay.example/callbacks/wx"}');
SELECT pay.set_secret('gateway:ali', 'private_key', pg_read_file('$keys/alipay_app_private.pem'));
SELECT pay.set_secret('gateway:ali', 'public_key', pg_read_file('$keys/alipay_platform_public.pem'));
SELECT pay.set_secret('gateway:wx', 'private_key', pg_read_file('$keys/wechat_merchant_private.pem'));
SELECT pay.set_secret('gateway:wx', 'platform_cert:$cfg->{pay}{wechat_platform_serial}', pg_read_file('$keys/wechat_platform_cert.pem'));
SELECT pay.create_merchant('acme', 'ACME', '$url/merchant/acme/notify');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$cfg->{merchants}{acme}{api_secret}');
SELECT pay.set_fee('ali', 'CNY', 0.6);
SELECT pay.set_fee('wx', 'CNY', 0.6);
});

sub order { $node->safe_psql('postgres', "SELECT id FROM pay.create_order('acme', '$_[0]', $_[1], '$_[2]', gateway => '$_[3]')") }
sub send_and_wait
{
	my ($order, $op, $params) = @_;
	my $id = $node->safe_psql('postgres', "SELECT pay.enqueue_psp_request($order, '$op', '" . ($params // '{}') . "')");
	wait_for_sql($node, "SELECT state IN ('done', 'dead') FROM pay.outbox WHERE id = $id", 20);
	return $node->safe_psql('postgres', "SELECT state || ':' || attempts || ':' || coalesce(last_status, 0) || ':' || coalesce(last_error, '') FROM pay.outbox WHERE id = $id");
}
# Every fetch step of a gateway: operation:state:status:error, in order.
sub steps
{
	return $node->safe_psql('postgres', qq{
SELECT string_agg(operation || ':' || state || ':' || coalesce(last_status, 0) || ':' || coalesce(last_error, ''), ' ' ORDER BY id)
  FROM pay.outbox WHERE destination = 'gateway:$_[0]' AND operation LIKE 'fetch\\_statement%'});
}
sub paid_and_refunded
{
	my ($order, $provider, $ref, $amount, $refund) = @_;
	is(send_and_wait($order, 'create_payment'), 'done:1:200:', "$provider: the order is at the PSP");
	control('POST', '/control/pay', { provider => $provider, order_id => $ref, amount => $amount, currency => 'CNY' });
	is(send_and_wait($order, 'query'), 'done:1:200:', "$provider: paid there, its id stored");
	$node->safe_psql('postgres', "SELECT pay.mark_paid($order, (SELECT psp_txn_id FROM pay.orders WHERE id = $order), $amount, 'CNY')");
	my $r = $node->safe_psql('postgres', "SELECT pay.refund($order, $refund)");
	is(send_and_wait($order, 'refund', qq({"refund_id": $r})), 'done:1:200:', "$provider: partly refunded");
}
# The bill date: the Beijing day of the payment.
sub bill_day
{
	return $node->safe_psql('postgres', "SELECT (paid_at AT TIME ZONE 'Asia/Shanghai')::date FROM pay.orders WHERE id = $_[0]");
}
sub lines
{
	return $node->safe_psql('postgres', qq{
SELECT string_agg(l.kind || ':' || l.amount || ':' || l.fee || ':' || coalesce(l.expected_fee::text, '-') || ':' || l.result, ' '
                  ORDER BY l.kind, l.amount)
  FROM pay.statement_lines l JOIN pay.statements s ON s.id = l.statement_id
 WHERE s.gateway = '$_[0]' AND l.order_id = $_[1]});
}

# Alipay: 12.50 paid, 2.00 refunded; the fee 0.6% = 0.075, half-up 0.08
my $ao = order('A-1', 1250, 'CNY', 'ali');
paid_and_refunded($ao, 'alipay', "$ao", 1250, 200);
my $aday = bill_day($ao);
$node->safe_psql('postgres', "SELECT pay.fetch_statement('ali', '$aday')");
ok(wait_for_sql($node, q{SELECT count(*) = 2 AND bool_and(state IN ('done', 'dead')) FROM pay.outbox
                          WHERE destination = 'gateway:ali' AND operation LIKE 'fetch\_statement%'}, 30),
	'Alipay: both fetch steps finished');
is(steps('ali'), 'fetch_statement:done:200: fetch_statement_file:done:200:',
	'Alipay: the signed bill URL query, then the zip: both done');
is($node->safe_psql('postgres', "SELECT format || ':' || line_count FROM pay.statements WHERE gateway = 'ali'"),
	'alipay_trade_bill:2', 'the 业务明细 member of the zip is imported');
is(lines('ali', $ao), 'payment:1250:8:8:matched refund:200:1:-:matched',
	'its payment and refund match our books, the fee the rule expects');
is(control('GET', '/control/requests?path=/downloadBillFile.resource')->{count}, 1, 'the zip was downloaded once');

# a second fetch of the same day queues nothing new
$node->safe_psql('postgres', "SELECT pay.fetch_statement('ali', '$aday')");
is($node->safe_psql('postgres', q{SELECT count(*) FROM pay.outbox WHERE destination = 'gateway:ali' AND operation LIKE 'fetch\_statement%'}),
	'2', 'fetching the same day again queues nothing');

# an answer whose signature does not verify is never used: the fetch goes dead
$node->safe_psql('postgres', qq{SELECT pay.set_secret('gateway:ali', 'public_key', pg_read_file('$keys/wrong_public.pem'))});
my $prev = $node->safe_psql('postgres', "SELECT ('$aday'::date - 1)");
$node->safe_psql('postgres', "SELECT pay.fetch_statement('ali', '$prev')");
ok(wait_for_sql($node, qq{SELECT state = 'dead' FROM pay.outbox WHERE idempotency_key = 'fetch_statement:ali:$prev'}, 30),
	'Alipay: an answer not signed by the gateway key is refused');
like($node->safe_psql('postgres', qq{SELECT last_error FROM pay.outbox WHERE idempotency_key = 'fetch_statement:ali:$prev'}),
	qr/signature of alipay's answer does not verify/, '... saying why');
is($node->safe_psql('postgres', qq{SELECT count(*) FROM pay.outbox WHERE idempotency_key = 'fetch_statement_file:ali:$prev'}),
	'0', '... and no file is fetched');

# WeChat Pay: 8.88 paid, 1.00 refunded; the trade bill, SHA-1 checked
my $xo = order('X-1', 888, 'CNY', 'wx');
paid_and_refunded($xo, 'wechatpay', sprintf('%06d', $xo), 888, 100);
my $xday = bill_day($xo);
$node->safe_psql('postgres', "SELECT pay.fetch_statement('wx', '$xday')");
ok(wait_for_sql($node, q{SELECT count(*) = 2 AND bool_and(state IN ('done', 'dead')) FROM pay.outbox
                          WHERE destination = 'gateway:wx' AND operation LIKE 'fetch\_statement%'}, 30),
	'WeChat Pay: both fetch steps finished');
is(steps('wx'), 'fetch_statement:done:200: fetch_statement_file:done:200:', 'WeChat Pay: the trade bill, then the file: both done');
is($node->safe_psql('postgres', "SELECT format || ':' || line_count FROM pay.statements WHERE gateway = 'wx'"),
	'wechatpay_trade_bill:2', 'the trade bill is imported');
is(lines('wx', $xo), 'payment:888:5:5:matched refund:100:0:-:matched', 'its payment and refund match our books');

$fake->signal('TERM');
$fake->finish;
$node->stop('immediate');
done_testing();
