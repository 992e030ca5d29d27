# Backups: a database holding orders in every status, refunds, callbacks,
# outbox rows, wallets and secrets is dumped with plain pg_dump and restored
# with pg_restore (custom format, serial and -j 4) and with psql (plain
# format).  Every table of the copy equals the original's; the copy takes
# new orders whose ids continue, enforces every rule again, reveals the
# secrets with the same master key file, and refuses to be dropped.
use strict;
use warnings;
use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256_hex);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = abs_path(dirname(__FILE__) . '/../..');
my $node = PostgreSQL::Test::Cluster->new('backup');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pay'
pay.master_key_file = '$top/test/keys/master-a.hex'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pay');

# --- the original ------------------------------------------------------------
my $secret = 'whsec_backup_0123456789';
$node->safe_psql('src', qq{
SELECT pay.create_merchant('shop', 'Shop', 'https://shop.example/notify');
SELECT pay.set_secret('merchant:shop', 'api_secret', 'merchant-secret-1');
SELECT pay.create_gateway('stripe_b', 'stripe', 'https://api.stripe.example');
SELECT pay.set_secret('gateway:stripe_b', 'webhook_secret', '$secret');
SELECT pay.add_routing_rule('stripe_b', currency => 'USD');
-- a user's currency, a changed seeded currency, a user's transition
INSERT INTO pay.currencies (code, numeric_code, exponent, name) VALUES ('XTS', 963, 2, 'Testing code');
UPDATE pay.currencies SET name = 'US Dollar (renamed)' WHERE code = 'USD';
INSERT INTO pay.order_transitions VALUES ('failed', 'cancelled', 'given up after a failed payment');
-- an application role bound to the merchant (roles are cluster-wide: the copies find it)
CREATE ROLE shop_app IN ROLE pay_app;
SELECT pay.bind_merchant_role('shop_app', 'shop');
-- a callback to a name that is no gateway: counted
SELECT http_status FROM pay.handle_callback('nowhere', '{}', '{}');
});

# One order per status, and a few more.
my %id;
for my $n (qw(pending paid shipped completed cancelled failed refunded partial by_callback by_wallet)) {
	$id{$n} = $node->safe_psql('src',
		"SELECT id FROM pay.create_order('shop', 'B-$n', 1500, 'USD', idempotency_key => 'key-$n')");
}
$node->safe_psql('src', qq{
SELECT pay.mark_paid($id{paid}, 'pi_paid', 1500, 'USD');
SELECT pay.mark_paid($id{shipped}, 'pi_shipped', 1500, 'USD');
SELECT pay.ship($id{shipped});
SELECT pay.mark_paid($id{completed}, 'pi_completed', 1500, 'USD');
SELECT pay.ship($id{completed});
SELECT pay.complete($id{completed});
SELECT pay.cancel($id{cancelled}, 'changed my mind');
SELECT pay.mark_paid($id{refunded}, 'pi_refunded', 1500, 'USD');
SELECT pay.refund($id{refunded}, 1500, 'all of it');
SELECT pay.mark_paid($id{partial}, 'pi_partial', 1500, 'USD');
SELECT pay.refund($id{partial}, 500, 'one item', 'refund-key-1');
SELECT pay.enqueue_psp_request($id{pending}, 'query');
SELECT pay.open_account('wallet:alice', 'USD', non_negative => true);
SELECT pay.post('topup:alice', '[{"account":"psp:stripe_b:USD","amount":-5000},{"account":"wallet:alice","amount":5000}]');
SELECT pay.pay_with_balance($id{by_wallet}, 'wallet:alice');
SELECT pay.create_merchant('other', 'Other');
SELECT pay.create_order('other', 'B-other', 800, 'USD');
});

# Signed Stripe callbacks, signed here with Perl's own HMAC.
sub stripe_callback_in
{
	my ($db, $event, $type, $order, $sig_secret) = @_;
	my $t = time;
	my $body = qq({"id":"$event","object":"event","type":"$type","data":{"object":)
	  . qq({"id":"pi_$event","object":"payment_intent","amount":1500,"amount_received":1500,)
	  . qq("currency":"usd","metadata":{"order_id":"$order"}}}});
	my $v1 = hmac_sha256_hex("$t.$body", $sig_secret);
	my $headers = qq({"Stripe-Signature": "t=$t,v1=$v1", "Content-Type": "application/json"});
	return $node->safe_psql($db,
		"SELECT http_status FROM pay.handle_callback('stripe_b', \$h\$$headers\$h\$, \$b\$$body\$b\$)");
}
sub stripe_callback { return stripe_callback_in('src', @_) }
is(stripe_callback('evt_paid', 'payment_intent.succeeded', $id{by_callback}, $secret), 200, 'a signed payment callback is accepted');
is(stripe_callback('evt_paid', 'payment_intent.succeeded', $id{by_callback}, $secret), 200, 'its retry is acknowledged');
is(stripe_callback('evt_failed', 'payment_intent.payment_failed', $id{failed}, $secret), 200, 'a signed failure callback is accepted');
isnt(stripe_callback('evt_forged', 'payment_intent.succeeded', $id{pending}, 'whsec_wrong'), 200, 'a forged callback is refused');

is($node->safe_psql('src', 'SELECT string_agg(DISTINCT status, \',\' ORDER BY status) FROM pay.orders'),
	'cancelled,completed,failed,paid,pending,refunded,shipped', 'the original holds orders in every status');
is($node->safe_psql('src', q{
SELECT (SELECT count(*) FROM pay.refunds) > 1 AND (SELECT count(*) FROM pay.callbacks) >= 4
   AND (SELECT count(*) FROM pay.outbox) > 1 AND (SELECT count(*) FROM pay.entries) > 10
   AND (SELECT count(*) FROM pay.secrets) = 2 AND (SELECT count(*) FROM pay.idempotency_keys) = 10
   AND (SELECT sum(undelivered) FROM pay.outbox_backlog) > 0
   AND (SELECT count(*) FROM pay.merchant_roles) = 1 AND (SELECT count(*) FROM pay.unknown_gateway_callbacks) = 1}), 't',
	'and refunds, callbacks, outbox rows, entries, secrets, idempotency keys and a merchant binding');

# --- what is compared: every table of schema pay, row by row ---------------
my @tables = split /\n/, $node->safe_psql('src', q{
SELECT relname FROM pg_class WHERE relnamespace = 'pay'::regnamespace AND relkind = 'r' ORDER BY relname});
ok(@tables >= 25, scalar(@tables) . ' tables to compare');

sub snapshot
{
	my ($db) = @_;
	my %snap;
	for my $t (@tables) {
		# the backlog's slots are rebuilt by the outbox triggers: compare the total
		my $sql = $t eq 'outbox_backlog'
		  ? 'SELECT sum(undelivered) FROM pay.outbox_backlog'
		  : "SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM pay.$t t";
		$snap{$t} = $node->safe_psql($db, $sql);
	}
	$snap{sequences} = $node->safe_psql($db, q{
SELECT string_agg(format('%s=%s', sequencename, last_value), ',' ORDER BY sequencename)
  FROM pg_sequences WHERE schemaname = 'pay'});
	return \%snap;
}
my $original = snapshot('src');

sub secrets_of
{
	my ($db) = @_;
	return $node->safe_psql($db, q{
SELECT string_agg(pay.reveal_secret(owner, name), ',' ORDER BY owner, name) FROM pay.secrets});
}
my $original_secrets = secrets_of('src');

# --- dump and restore, three ways ---------------------------------------------
my $dir = PostgreSQL::Test::Utils::tempdir;
my $src = $node->connstr('src');
$node->command_ok(['pg_dump', '-Fc', '-f', "$dir/pay.dump", '-d', $src], 'pg_dump -Fc');
$node->command_ok(['pg_dump', '-Fp', '-f', "$dir/pay.sql", '-d', $src], 'pg_dump -Fp');

$node->safe_psql('postgres', 'CREATE DATABASE restored_custom');
$node->command_ok(['pg_restore', '--exit-on-error', '-d', $node->connstr('restored_custom'), "$dir/pay.dump"],
	'pg_restore of the custom format');
$node->safe_psql('postgres', 'CREATE DATABASE restored_parallel');
$node->command_ok(['pg_restore', '-j', '4', '-d', $node->connstr('restored_parallel'), "$dir/pay.dump"],
	'pg_restore -j 4');
$node->safe_psql('postgres', 'CREATE DATABASE restored_plain');
$node->command_ok(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored_plain'),
		'-f', "$dir/pay.sql"], 'psql replays the plain format');

for my $db (qw(restored_custom restored_parallel restored_plain)) {
	my $copy = snapshot($db);
	for my $t (@tables, 'sequences') {
		is($copy->{$t}, $original->{$t}, "$db: $t as in the original");
	}
	is(secrets_of($db), $original_secrets, "$db: secrets revealed with the same master key file");
}

# --- the copy works and guards again -------------------------------------------
my $db = 'restored_custom';
my $max_before = $node->safe_psql('src', 'SELECT max(id) FROM pay.orders');
my $new_id = $node->safe_psql($db, "SELECT id FROM pay.create_order('shop', 'B-new', 700, 'USD')");
cmp_ok($new_id, '>', $max_before, 'a new order takes an id after the restored ones');
is($node->safe_psql($db, "SELECT id FROM pay.create_order('shop', 'B-paid', 1500, 'USD', idempotency_key => 'key-paid')"),
	$id{paid}, 'a restored idempotency key answers with its order');
is(stripe_callback_in($db, 'evt_paid', 'payment_intent.succeeded', $id{by_callback}, $secret), 200, 'a restored callback event is still a duplicate');
is($node->safe_psql($db, "SELECT count(*) FROM pay.order_events WHERE order_id = $id{by_callback}"), 1,
	'and changes nothing');

sub refused
{
	my ($sql, $sqlstate, $what) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY sqlstate\n$sql");
	like($err, qr/\b$sqlstate\b/, "$what: $sqlstate");
}
refused("INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, status)
         SELECT id, 'B-x', 100, 'USD', 'paid' FROM pay.merchants", 'PY001', 'an order inserted as paid');
refused("UPDATE pay.orders SET status = 'pending' WHERE id = $id{completed}", 'PY001', 'an illegal transition');
refused("UPDATE pay.orders SET status = 'shipped' WHERE id = $id{refunded}", 'PY001', 'leaving a terminal status');
refused('DELETE FROM pay.entries', '23001', 'deleting entries');

refused(q{SELECT pay.post('bad', '[{"account":"wallet:alice","amount":1},{"account":"merchant:shop:USD","amount":-2}]')},
	'PY004', 'an unbalanced posting');
my $short = $node->safe_psql($db, "SELECT id FROM pay.create_order('shop', 'B-short', 99999, 'USD')");
refused("SELECT pay.pay_with_balance($short, 'wallet:alice')", 'PY003', 'a wallet payment past the balance');
refused("SELECT pay.refund($id{partial}, 1001)", 'PY005', 'a refund past the refundable amount');
refused('DROP EXTENSION pay', '2BP01', 'dropping the restored ledger');
is($node->safe_psql($db, 'SET ROLE shop_app; SELECT count(*) FROM pay.orders'),
	$node->safe_psql($db, "SELECT count(*) FROM pay.orders o JOIN pay.merchants m ON m.id = o.merchant_id WHERE m.code = 'shop'"),
	'the restored binding still filters what the bound role sees');
is($node->safe_psql($db, "SET ROLE shop_app; SELECT count(*) FROM pay.orders WHERE merchant_order_no = 'B-other'"), 0,
	'another merchant\'s order stays hidden');
is($node->safe_psql($db, 'SELECT count(*) FROM pay.order_events e JOIN pay.orders o ON o.id = e.order_id'),
	$node->safe_psql('src', 'SELECT count(*) FROM pay.order_events') + 0,
	'the restore wrote no order events of its own');

done_testing();
