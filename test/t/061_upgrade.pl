# Upgrades and the extension's lifecycle.  Versions 0.1 and 0.2, installed
# from their released scripts and holding data, are upgraded with ALTER
# EXTENSION pay UPDATE (0.1 through every step, 0.2 in one): the catalog is then exactly a fresh install's (every function
# with its signature, body, volatility, security and settings; tables,
# columns, constraints, indexes, triggers, policies, grants, comments: see
# test/lib/catalog.sql), the data is intact and the upgraded ledger works.
# DROP EXTENSION refuses while the ledger holds data and drops it when the
# superuser says so.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = abs_path(dirname(__FILE__) . '/../..');
my ($released) = slurp_file("$top/pay.control") =~ /default_version\s*=\s*'([^']+)'/;
my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pay'
pay.master_key_file = '$top/test/keys/master-a.hex'
});
$node->start;
my $catalog_sql = slurp_file("$top/test/lib/catalog.sql");

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pay');
is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'pay'"), $released,
	"a fresh install is version $released");

# --- 0.1 with data -----------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', "CREATE EXTENSION pay VERSION '0.1'");
# (the C code installed now queues 0.2's notifications: a merchant without a
# notify_url takes none, so 0.1's tables can hold the data)
$node->safe_psql('upgraded', q{
SELECT pay.create_merchant('shop', 'Shop');
SELECT pay.set_secret('merchant:shop', 'api_secret', 'merchant-secret-1');
SELECT pay.create_gateway('stripe_u', 'stripe', 'https://api.stripe.example');
SELECT pay.set_secret('gateway:stripe_u', 'webhook_secret', 'whsec_upgrade');
SELECT pay.add_routing_rule('stripe_u', currency => 'USD');
-- orders as 0.1's create_order wrote them (the C code installed now routes
-- with 0.2's tables: a database takes traffic again after its upgrade)
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, gateway, expires_at)
SELECT m.id, 'U-' || n, 1000 + n, 'USD', 'stripe_u', now() + interval '15 minutes'
  FROM pay.merchants m, generate_series(1, 6) n WHERE m.code = 'shop';
INSERT INTO pay.idempotency_keys (merchant_id, key, request, order_id)
SELECT o.merchant_id, 'key-' || o.merchant_order_no, '{}', o.id FROM pay.orders o;
SELECT pay.mark_paid(o.id, 'pi_' || o.id, o.amount, 'USD') FROM pay.orders o WHERE o.merchant_order_no IN ('U-2', 'U-3', 'U-4');
SELECT pay.ship(id) FROM pay.orders WHERE merchant_order_no = 'U-3';
SELECT pay.refund(id, 500, 'partly') FROM pay.orders WHERE merchant_order_no = 'U-4';
SELECT pay.cancel(id) FROM pay.orders WHERE merchant_order_no = 'U-5';
SELECT pay.open_account('wallet:bob', 'USD', non_negative => true);
SELECT pay.post('topup:bob', '[{"account":"psp:stripe_u:USD","amount":-3000},{"account":"wallet:bob","amount":3000}]');
SELECT pay.enqueue_psp_request(id, 'query') FROM pay.orders WHERE merchant_order_no = 'U-1';
-- a callback as 0.1 recorded it (the C code installed now writes 0.2's columns)
INSERT INTO pay.callbacks (gateway, headers, body, verdict, reason_code, reason, http_status)
VALUES ('stripe_u', '{"Stripe-Signature": "t=1,v1=00"}', '{"id":"evt_bad"}', 'rejected', 'PY010', 'signature invalid', 401);
});

# Each 0.1 table's rows, over the columns it had in 0.1.
my @tables = split /\n/, $node->safe_psql('upgraded', q{
SELECT relname FROM pg_class WHERE relnamespace = 'pay'::regnamespace AND relkind = 'r' ORDER BY relname});
my %columns = map {
	my $t = $_;
	$t => $node->safe_psql('upgraded', qq{
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = 'pay.$t'::regclass AND attnum > 0 AND NOT attisdropped})
} @tables;
sub rows
{
	my %rows;
	for my $t (@tables) {
		$rows{$t} = $node->safe_psql('upgraded', qq{
SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), ''))
  FROM (SELECT $columns{$t} FROM pay.$t) r});
	}
	return \%rows;
}
my $before = rows();
my $secrets = q{SELECT string_agg(pay.reveal_secret(owner, name), ',' ORDER BY owner, name) FROM pay.secrets};
my $secrets_before = $node->safe_psql('upgraded', $secrets);

# --- the upgrade -----------------------------------------------------------------
my ($ret, $out, $err) = $node->psql('upgraded', 'ALTER EXTENSION pay UPDATE');
is($ret, 0, 'ALTER EXTENSION pay UPDATE') or diag($err);
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'pay'"), $released,
	"the upgraded install is version $released");

# The catalog of database $db is exactly a fresh install's.
sub same_catalog
{
	my ($db, $what) = @_;
	my @fresh = split /\n/, $node->safe_psql('fresh', $catalog_sql);
	my @upgraded = split /\n/, $node->safe_psql($db, $catalog_sql);
	my %in_fresh = map { $_ => 1 } @fresh;
	my %in_upgraded = map { $_ => 1 } @upgraded;
	my @missing = grep { !$in_upgraded{$_} } @fresh;
	my @extra = grep { !$in_fresh{$_} } @upgraded;
	ok(@fresh > 500, scalar(@fresh) . ' catalog lines in a fresh install');
	is(scalar(@missing) + scalar(@extra), 0, "the catalog upgraded $what is exactly the fresh one")
	  or diag(join("\n", (map { "only fresh:    $_" } @missing), (map { "only upgraded: $_" } @extra)));
}
same_catalog('upgraded', 'from 0.1');

my $after = rows();
for my $t (@tables) {
	is($after->{$t}, $before->{$t}, "$t: rows intact");
}
is($node->safe_psql('upgraded', $secrets), $secrets_before, 'secrets reveal as before');
my $seeds = q{SELECT count(*) || ' ' || md5(string_agg(s::text, ',' ORDER BY s::text)) FROM pay.seed_rows s};
is($node->safe_psql('upgraded', $seeds), $node->safe_psql('fresh', $seeds), 'the seeded rows are known as in a fresh install');

# --- the upgraded ledger works ------------------------------------------------------
my $max = $node->safe_psql('upgraded', 'SELECT max(id) FROM pay.orders');
cmp_ok($node->safe_psql('upgraded', "SELECT id FROM pay.create_order('shop', 'U-new', 900, 'USD')"), '>', $max,
	'a new order after the upgrade');
is($node->safe_psql('upgraded', "SELECT status FROM pay.mark_paid((SELECT id FROM pay.orders WHERE merchant_order_no = 'U-new'), 'pi_new', 900, 'USD')"),
	'paid', 'and it is paid and booked');
is($node->safe_psql('upgraded', 'SELECT count(*) FROM pay.ledger_problems'), 0, 'the books are sound');

# --- 0.2 with data, upgraded in one step -----------------------------------------
# (0.2's SQL with the C code installed now: only calls whose C side 0.2
# already had, so 0.2's tables can hold the data)
$node->safe_psql('postgres', 'CREATE DATABASE from02');
$node->safe_psql('from02', "CREATE EXTENSION pay VERSION '0.2'");
$node->safe_psql('from02', q{
SELECT pay.create_merchant('shop', 'Shop');
SELECT pay.create_gateway('stripe_u', 'stripe', 'https://api.stripe.example');
SELECT pay.add_routing_rule('stripe_u', currency => 'USD');
SELECT pay.create_order('shop', 'V-' || n, 2000 + n, 'USD', idempotency_key => 'v-' || n) FROM generate_series(1, 4) n;
SELECT pay.mark_paid(o.id, 'pi_v' || o.id, o.amount, 'USD') FROM pay.orders o WHERE o.merchant_order_no IN ('V-2', 'V-3');
SELECT pay.refund(id, 700, 'partly') FROM pay.orders WHERE merchant_order_no = 'V-3';
SELECT pay.cancel(id) FROM pay.orders WHERE merchant_order_no = 'V-4';
});
my $orders02 = q{SELECT string_agg(concat_ws(' ', id, merchant_order_no, amount, status, refunded_amount, psp_txn_id), ',' ORDER BY id) FROM pay.orders};
my $orders02_before = $node->safe_psql('from02', $orders02);
($ret, $out, $err) = $node->psql('from02', 'ALTER EXTENSION pay UPDATE');
is($ret, 0, 'ALTER EXTENSION pay UPDATE from 0.2') or diag($err);
is($node->safe_psql('from02', "SELECT extversion FROM pg_extension WHERE extname = 'pay'"), $released,
	"0.2 upgraded is version $released");
same_catalog('from02', 'from 0.2');
is($node->safe_psql('from02', $orders02), $orders02_before, '0.2 orders intact');
is($node->safe_psql('from02', "SELECT status FROM pay.mark_paid((SELECT id FROM pay.create_order('shop', 'V-new', 900, 'USD')), 'pi_vnew', 900, 'USD')"),
	'paid', 'a new order after the upgrade from 0.2 is paid and booked');
is($node->safe_psql('from02', 'SELECT count(*) FROM pay.ledger_problems'), 0, 'the books upgraded from 0.2 are sound');

# --- DROP EXTENSION ------------------------------------------------------------------
sub psql_err
{
	my ($db, $sql) = @_;
	my ($r, $o, $e) = $node->psql($db, $sql, extra_params => ['-v', 'VERBOSITY=verbose']);
	return $e;
}
my $refusal = psql_err('upgraded', 'DROP EXTENSION pay');
like($refusal, qr/2BP01/, 'DROP EXTENSION pay refuses while the ledger holds data');
like($refusal, qr/HINT:.*pay\.confirm_drop_ledger/, 'with a hint naming the way out');
like(psql_err('upgraded', 'DROP SCHEMA pay CASCADE'), qr/2BP01/, 'so does DROP SCHEMA pay CASCADE');
is($node->safe_psql('upgraded', 'SELECT count(*) > 0 FROM pay.orders'), 't', 'the ledger is still there');

$node->safe_psql('upgraded', 'CREATE ROLE dba_nosuper LOGIN');
like(psql_err('upgraded', "SET ROLE dba_nosuper; SET pay.confirm_drop_ledger = on"), qr/42501/,
	'only a superuser sets pay.confirm_drop_ledger');
$node->safe_psql('upgraded', 'SET pay.confirm_drop_ledger = on; DROP EXTENSION pay CASCADE');
is($node->safe_psql('upgraded', "SELECT count(*) FROM pg_extension WHERE extname = 'pay'"), 0,
	'with pay.confirm_drop_ledger on, the superuser drops it');

$node->safe_psql('postgres', 'CREATE DATABASE empty');
$node->safe_psql('empty', 'CREATE EXTENSION pay');
$node->safe_psql('empty', "SELECT pay.create_merchant('m', 'M')");
$node->safe_psql('empty', 'DROP EXTENSION pay');
is($node->safe_psql('empty', "SELECT count(*) FROM pg_extension WHERE extname = 'pay'"), 0,
	'an extension without orders or postings drops without ceremony');

done_testing();
