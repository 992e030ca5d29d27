# The token bucket is exact across backends: a merchant limited to 50 orders
# per second with a burst of 10, hammered by 8 clients for 5 seconds, gets
# 10 + 50 x 5 = 260 orders at most (240-270 allowing for the clients'
# start-up); every other attempt is PY029 and wrote nothing; a merchant
# without a limit, served at the same time, loses nothing.  Then: a
# restart keeps the limit (configuration) and starts the bucket full, and
# the default limit (pay.default_rate_limit) covers merchants without one.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use PayDispatcherTest;

my $node = pay_node('rate_limit');
$node->safe_psql('postgres', q{
SELECT pay.create_merchant('hot', 'Hammered Shop');
SELECT pay.create_merchant('calm', 'Calm Shop');
SELECT pay.set_rate_limit('hot', 50, 10);
CREATE TABLE tally (client int, merchant text, ok int, limited int, other int);
});

# One client: from the common start, for 5 s, create orders (each with its
# own idempotency key), counting outcomes; its orders commit with the DO block.
sub client_sql
{
	my ($client, $merchant, $start, $pause) = @_;
	my $deadline = $start + 5;
	return qq{
DO \$\$
DECLARE ok int := 0; limited int := 0; other int := 0; i int := 0;
BEGIN
  PERFORM pg_sleep_until(to_timestamp($start));
  WHILE clock_timestamp() < to_timestamp($deadline) LOOP
    i := i + 1;
    BEGIN
      PERFORM pay.create_order('$merchant', 'C$client-' || i, 100, 'USD', idempotency_key => 'k$client-' || i);
      ok := ok + 1;
    EXCEPTION WHEN SQLSTATE 'PY029' THEN limited := limited + 1;
              WHEN OTHERS THEN other := other + 1; RAISE WARNING '%: %', SQLSTATE, SQLERRM;
    END;
    PERFORM pg_sleep($pause);
  END LOOP;
  INSERT INTO tally VALUES ($client, '$merchant', ok, limited, other);
END \$\$;};
}

my $start = time() + 1;	# a second for the clients to connect
my @h;
for my $c (1 .. 8)
{
	push @h, IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-c', client_sql($c, 'hot', $start, 0.002) ]);
}
push @h, IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
	'-c', client_sql(9, 'calm', $start, 0.02) ]);
$_->finish for @h;

my ($ok, $limited, $other) = split /\|/, $node->safe_psql('postgres',
	"SELECT sum(ok), sum(limited), sum(other) FROM tally WHERE merchant = 'hot'");
note "hot: $ok orders, $limited PY029, $other other errors";
cmp_ok($ok, '>=', 240, 'the limited merchant got at least 240 orders in 5 s');
cmp_ok($ok, '<=', 270, 'and at most 270 (50/s, burst 10)');
cmp_ok($limited, '>', 1000, 'the rest were refused with PY029');
is($other, 0, 'no other error');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM pay.orders o JOIN pay.merchants m ON m.id = o.merchant_id WHERE m.code = 'hot'}),
	$ok, 'exactly the accepted orders were written');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM pay.idempotency_keys k JOIN pay.merchants m ON m.id = k.merchant_id WHERE m.code = 'hot'}),
	$ok, 'a refused create left no idempotency key');

my ($calm_ok, $calm_limited, $calm_other) = split /\|/, $node->safe_psql('postgres',
	"SELECT ok, limited, other FROM tally WHERE merchant = 'calm'");
cmp_ok($calm_ok, '>', 50, "the other merchant's client made $calm_ok orders");
is($calm_limited + $calm_other, 0, 'none of them refused');

# A restart keeps the configuration and starts the bucket full: a burst of
# 10, then PY029 (1 per 1000 s cannot refill in between).
$node->safe_psql('postgres', "SELECT pay.set_rate_limit('hot', 0.001, 10)");
$node->restart;
is($node->safe_psql('postgres', q{
SELECT count(*) FROM generate_series(1, 10) i, LATERAL pay.create_order('hot', 'R-' || i, 100, 'USD')}),
	10, 'after a restart the bucket is full');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT pay.create_order('hot', 'R-11', 100, 'USD')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/PY029.*hot.*\n.*DETAIL:\s+\d+/, 'then PY029 naming the merchant, seconds in DETAIL');

# The default limit covers merchants without their own.
$node->append_conf('postgresql.conf', "pay.default_rate_limit = 0.001\npay.default_rate_burst = 3\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('pay.default_rate_limit') = '0.001'");
is($node->safe_psql('postgres', q{
SELECT count(*) FROM generate_series(1, 3) i, LATERAL pay.create_order('calm', 'D-' || i, 100, 'USD')}),
	3, 'the default burst');
($rc, $out, $err) = $node->psql('postgres', "SELECT pay.create_order('calm', 'D-4', 100, 'USD')");
like($err, qr/calm.*rate limit of 0\.001 orders per second \(burst 3\)/, 'then the default limit refuses');

$node->stop;

# Without shared_preload_libraries there are no buckets: set_rate_limit says so.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', "CREATE EXTENSION pay; SELECT pay.create_merchant('p', 'Plain')");
($rc, $out, $err) = $plain->psql('postgres', "SELECT pay.set_rate_limit('p', 5, 5)");
like($err, qr/rate limits need pay in shared_preload_libraries/, 'not preloaded: set_rate_limit refuses');
is($plain->safe_psql('postgres', "SELECT count(*) FROM pay.rate_limits"), 0, 'and writes nothing');
$plain->stop;
done_testing();
