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
# A database of an older version holding data.  The library installed now is
# this version's, whose C code reads and writes this version's columns (an
# installation updates the extension before it takes traffic again), so
# what the older version's C code did is written here as plain SQL: orders
# moved along their edges by UPDATE (the state machine's trigger checks each
# move), bookings inserted as postings, entries and balances.
sub fill_old
{
	my ($db, $p) = @_;
	$node->safe_psql($db, qq{
SELECT pay.create_merchant('shop', 'Shop');
SELECT pay.set_secret('merchant:shop', 'api_secret', 'merchant-secret-1');
SELECT pay.create_gateway('stripe_u', 'stripe', 'https://api.stripe.example');
SELECT pay.set_secret('gateway:stripe_u', 'webhook_secret', 'whsec_upgrade');
SELECT pay.add_routing_rule('stripe_u', currency => 'USD');
SELECT pay.open_account('psp:stripe_u:USD', 'USD');
SELECT pay.open_account('merchant:shop:USD', 'USD');
SELECT pay.open_account('wallet:bob', 'USD', non_negative => true);
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, gateway, expires_at)
SELECT m.id, '$p-' || n, 1000 + n, 'USD', 'stripe_u', now() + interval '15 minutes'
  FROM pay.merchants m, generate_series(1, 6) n WHERE m.code = 'shop';
INSERT INTO pay.idempotency_keys (merchant_id, key, request, order_id)
SELECT o.merchant_id, 'key-' || o.merchant_order_no, '{}', o.id FROM pay.orders o;
UPDATE pay.orders SET status = 'paid', psp_txn_id = 'pi_' || id, paid_at = now(),
       paid_account_id = (SELECT id FROM pay.accounts WHERE code = 'psp:stripe_u:USD')
 WHERE merchant_order_no IN ('$p-2', '$p-3', '$p-4');
UPDATE pay.orders SET status = 'shipped' WHERE merchant_order_no = '$p-3';
INSERT INTO pay.refunds (order_id, amount, reason) SELECT id, 500, 'partly' FROM pay.orders WHERE merchant_order_no = '$p-4';
UPDATE pay.orders SET refunded_amount = 500 WHERE merchant_order_no = '$p-4';
UPDATE pay.orders SET status = 'cancelled' WHERE merchant_order_no = '$p-5';
WITH b(ref, order_id, debit, credit, amount) AS (
  SELECT 'order:' || id || ':paid', id, 'psp:stripe_u:USD', 'merchant:shop:USD', amount FROM pay.orders WHERE paid_at IS NOT NULL
  UNION ALL SELECT 'refund:' || order_id, order_id, 'merchant:shop:USD', 'psp:stripe_u:USD', amount FROM pay.refunds
  UNION ALL SELECT 'topup:bob', NULL, 'psp:stripe_u:USD', 'wallet:bob', 3000),
p AS (INSERT INTO pay.postings (ref, order_id) SELECT ref, order_id FROM b RETURNING id, ref)
INSERT INTO pay.entries (posting_id, account_id, amount, currency)
SELECT p.id, a.id, CASE WHEN a.code = b.debit THEN -b.amount ELSE b.amount END, 'USD'
  FROM b JOIN p USING (ref) JOIN pay.accounts a ON a.code IN (b.debit, b.credit);
UPDATE pay.account_balances x SET balance = s.total
  FROM (SELECT account_id, sum(amount) AS total FROM pay.entries GROUP BY 1) s
 WHERE x.account_id = s.account_id AND x.slot = 0;
SELECT pay.enqueue_psp_request(id, 'query') FROM pay.orders WHERE merchant_order_no = '$p-1';
-- a callback as the older version recorded it
INSERT INTO pay.callbacks (gateway, headers, body, verdict, reason_code, reason, http_status)
VALUES ('stripe_u', '{"Stripe-Signature": "t=1,v1=00"}', '{"id":"evt_bad"}', 'rejected', 'PY010', 'signature invalid', 401);
});
	is($node->safe_psql($db, 'SELECT count(*) FROM pay.ledger_problems'), 0, "$db: the books of the older version are sound");
}
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', "CREATE EXTENSION pay VERSION '0.1'");
fill_old('upgraded', 'U');

# Each 0.1 table's rows, over the columns it had in 0.1.
my @tables = split /\n/, $node->safe_psql('upgraded', q{
SELECT relname FROM pg_class WHERE relnamespace = 'pay'::regnamespace AND relkind = 'r' ORDER BY relname});
my %columns = map {
	my $t = $_;
	$t => $node->safe_psql('upgraded', qq{
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = 'pay.$t'::regclass AND attnum > 0 AND NOT attisdropped})
} @tables;
# (Of the seeded tables, the rows the older version had: an upgrade adds the
# new version's seeds, as a fresh install has them; the seed_rows check
# below compares those.)
my %seeded = map { $_ => 1 } qw(currencies order_statuses order_transitions);
my %seeded_before;
sub rows
{
	my %rows;
	for my $t (@tables) {
		my $only_old = $seeded{$t} && $seeded_before{$t}
		  ? "WHERE r::text IN (SELECT unnest(string_to_array(\$\$$seeded_before{$t}\$\$, E'\\n')))" : '';
		$rows{$t} = $node->safe_psql('upgraded', qq{
SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), ''))
  FROM (SELECT $columns{$t} FROM pay.$t) r $only_old});
		$seeded_before{$t} //= $node->safe_psql('upgraded', qq{
SELECT string_agg(r::text, E'\\n' ORDER BY r::text) FROM (SELECT $columns{$t} FROM pay.$t) r}) if $seeded{$t};
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
$node->safe_psql('postgres', 'CREATE DATABASE from02');
$node->safe_psql('from02', "CREATE EXTENSION pay VERSION '0.2'");
fill_old('from02', 'V');
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
