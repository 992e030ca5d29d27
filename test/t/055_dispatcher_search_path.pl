# The dispatcher runs as the bootstrap superuser: a database owner who puts
# public ahead of pg_catalog in the database's search_path and creates
# functions and operators there that outrank the built-in ones must not get
# them run by the worker (with its rights).  The shadowing objects log each
# call and, when called by a superuser, make their owner a superuser too.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PayDispatcherTest;

my $port = start_peer();
my $url = "http://127.0.0.1:$port";
my $node = pay_node('search_path', q{
pay.notify_schedule = '200ms,200ms,200ms'
pay.retry_jitter = 0
pay.breaker_failures = 0
pay.dispatcher_lease = '1s'
pay.http_timeout = '2s'
});

# Every query of this test pins its own path: the database's would run the traps.
my $pin = 'SET search_path = pg_catalog, pg_temp; ';
sub q_pinned { my ($sql) = @_; return $node->safe_psql('postgres', $pin . $sql); }

# mallory owns the database (and so, in PostgreSQL 15, may create in public).
$node->safe_psql('postgres', q{
CREATE ROLE mallory LOGIN;
ALTER DATABASE postgres OWNER TO mallory;
});
$node->safe_psql('postgres', q{
SET ROLE mallory;
CREATE TABLE public.trap_log (what text, who text, superuser text);
-- each trap logs its call; run by a superuser it makes mallory one
CREATE FUNCTION public.sprung(what text) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  INSERT INTO public.trap_log VALUES (what, pg_catalog.current_user(), pg_catalog.current_setting('is_superuser'));
  IF pg_catalog.current_setting('is_superuser') = 'on' THEN
    EXECUTE 'ALTER ROLE mallory SUPERUSER';
  END IF;
END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION public.to_regclass(text) RETURNS regclass LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('to_regclass(text)'); RETURN pg_catalog.to_regclass($1); END $$;
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('lower(text)'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('unnest(bigint[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
-- bigint * interval has no built-in operator (float8 * interval serves it
-- through an implicit cast): an exact match anywhere on the path wins
CREATE FUNCTION public.trap_mul(bigint, interval) RETURNS interval LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('bigint * interval'); RETURN $2 OPERATOR(pg_catalog.*) $1::float8; END $$;
CREATE OPERATOR public.* (LEFTARG = bigint, RIGHTARG = interval, FUNCTION = public.trap_mul);
CREATE FUNCTION public.trap_plus(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('timestamptz + interval'); RETURN $1 OPERATOR(pg_catalog.+) $2; END $$;
CREATE OPERATOR public.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.trap_plus);
CREATE FUNCTION public.trap_minus(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('timestamptz - interval'); RETURN $1 OPERATOR(pg_catalog.-) $2; END $$;
CREATE OPERATOR public.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.trap_minus);
CREATE FUNCTION public.trap_int_plus(integer, integer) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('integer + integer'); RETURN $1 OPERATOR(pg_catalog.+) $2; END $$;
CREATE OPERATOR public.+ (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.trap_int_plus);
CREATE FUNCTION public.trap_bigint_plus(bigint, bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('bigint + bigint'); RETURN $1 OPERATOR(pg_catalog.+) $2; END $$;
CREATE OPERATOR public.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.trap_bigint_plus);
CREATE FUNCTION public.trap_text_eq(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('text = text'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_text_eq);
CREATE FUNCTION public.trap_ts_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
  $$ BEGIN PERFORM public.sprung('timestamptz <= timestamptz'); RETURN $1 OPERATOR(pg_catalog.<=) $2; END $$;
CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.trap_ts_le);
GRANT INSERT ON public.trap_log TO PUBLIC;
RESET ROLE;
ALTER DATABASE postgres SET search_path = public, pg_catalog;
});

# The traps work: an ordinary session with the database's path springs them.
is($node->safe_psql('postgres', q{SET ROLE mallory; SELECT now() IS NOT NULL, 7::bigint * interval '1 ms'}),
	't|00:00:00.007', 'control: a session on the database\'s path calls the traps');
is(q_pinned(q{SELECT string_agg(what || ':' || superuser, ',' ORDER BY what) FROM public.trap_log}),
	'bigint * interval:off,now():off', 'control: the traps logged the calls');
q_pinned('TRUNCATE public.trap_log');

# A worker started now connects with the database's search_path.
$node->restart;
ok(wait_for_sql($node, $pin . q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pay dispatcher'}),
	'the dispatcher runs');

# Work on every path of the worker: a notification that fails and is retried
# until dead (record, schedule), one that succeeds, a PSP request whose answer
# is applied, and a claim taken back at the lease.
q_pinned(qq{
SELECT pay.create_merchant('fails', 'Fails', '$url/status/500/fails');
SELECT pay.create_merchant('works', 'Works', '$url/ok/works');
SELECT pay.set_secret('merchant:fails', 'api_secret', 'secret-fails');
SELECT pay.set_secret('merchant:works', 'api_secret', 'secret-works');
SELECT pay.create_gateway('gj', 'generic', '$url/json/gj');
SELECT pay.mark_paid((pay.create_order('fails', 'F-1', 1000, 'USD')).id, 'txn-f', 1000, 'USD');
SELECT pay.mark_paid((pay.create_order('works', 'W-1', 1000, 'USD')).id, 'txn-w', 1000, 'USD');
SELECT pay.enqueue_psp_request((pay.create_order('works', 'P-1', 1000, 'USD', gateway => 'gj')).id, 'create_payment');
});
ok(wait_for_sql($node, $pin . q{SELECT bool_and(state IN ('done', 'dead')) FROM pay.outbox}, 60),
	'every request ends done or dead');
my $row = q{SELECT state || ':' || attempts FROM pay.outbox WHERE destination = '%s' ORDER BY id LIMIT 1};
my $err = q{SELECT last_error FROM pay.outbox WHERE destination = 'merchant:fails'};
like(q_pinned($err), qr/^HTTP 500 \(attempt 4 of 4: no more\)$/, 'the merchant answered, each time, 500');
is(q_pinned(sprintf($row, 'merchant:fails')), 'dead:4', 'the failing notification went through every retry');
is(q_pinned(sprintf($row, 'merchant:works')), 'done:1', 'the other notification was delivered');
is(q_pinned(sprintf($row, 'gateway:gj')), 'done:1', 'the PSP request was sent and its answer applied');
# a claim older than the lease is taken back (now() - lease) and sent again
q_pinned(q{UPDATE pay.outbox SET state = 'in_flight', claimed_at = pg_catalog.now() - interval '1 hour',
  finished_at = NULL WHERE destination = 'merchant:fails'});
ok(wait_for_sql($node, $pin . q{SELECT count(*) = 1 FROM pay.outbox_attempts WHERE outcome = 'interrupted'}, 30),
	'the expired claim was taken back');
wait_for_sql($node, $pin . q{SELECT state = 'dead' AND attempts = 5 FROM pay.outbox WHERE destination = 'merchant:fails'}, 30);
is(q_pinned(sprintf($row, 'merchant:fails')), 'dead:5', 'and sent again');

is(q_pinned(q{SELECT coalesce(string_agg(DISTINCT what || ' by ' || who, ', '), 'none') FROM public.trap_log}),
	'none', 'the worker called none of the shadowing functions and operators');
is(q_pinned(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f', 'mallory is not a superuser');

done_testing();
