/*
 * order_route.c — pay._route: the gateway a new order goes to, and the rule
 * that chose it.
 *
 * The gateway asked for, if it exists and is enabled.  Otherwise the
 * routing rules whose merchant, currency (NULL matches any) and amount
 * (inclusive bounds, NULL: none) match, taken by priority tier, lowest
 * first.  In the first tier with a rule whose gateway is available
 * (enabled, and its circuit not open: pay.gateway_available, fed by the
 * dispatcher's breakers), one of the available rules is chosen in
 * proportion to weight: a hash of (merchant, merchant_order_no) picks the
 * point, so a retried create lands on the same gateway and a large number
 * of orders splits by the weights.  Without an order number (pay.route:
 * "which gateway would a new order get") the heaviest rule of the tier
 * answers.  When every matching gateway's circuit is open, the first
 * matching enabled rule is taken anyway: the order still needs a gateway,
 * and the dispatcher holds its requests until the circuit half-opens.
 * No rule matches: no gateway (NULL).
 *
 * Rules and gateways are cached per backend, because create_order runs
 * this on every order and the query cost more than the order's INSERT; a
 * decision walks the cached rules in C, so a hundred rules of other
 * merchants cost next to nothing.  Statement triggers on pay.routing_rules
 * and pay.gateways send a relcache invalidation for their table on every
 * change; the callback below drops the cache (also when the changing
 * transaction rolls back, because PostgreSQL replays a rolled-back
 * transaction's invalidations locally).  The open circuits of gateways
 * (pay.circuit_breakers: state open, until open_until) are cached with
 * them: the dispatcher writes that table when a circuit opens or closes,
 * and row triggers there invalidate this cache on such changes only.  A
 * circuit is open while open_until is after now() (the transaction's
 * start), as pay.gateway_available says; reading it through that SQL
 * function cost as much as the rest of create_order.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pay.h"

#define GATEWAY_NAME_MAX	64

typedef struct Gateway
{
	char		name[GATEWAY_NAME_MAX + 1];
	bool		enabled;
	TimestampTz open_until;		/* circuit open until then; 0: not open */
} Gateway;

typedef struct Rule
{
	int64		id;
	int64		merchant_id;	/* 0: any */
	char		currency[4];	/* "": any */
	int64		min_amount;		/* inclusive; 0 when none */
	int64		max_amount;		/* inclusive; PG_INT64_MAX when none */
	int32		priority;
	int32		weight;			/* >= 1 */
	int			gateway;		/* index into gateways */
} Rule;

/* What a decision found: the rule (NULL: none) and its gateway. */
typedef struct Route
{
	const Rule *rule;
	const char *gateway;
} Route;

typedef struct RouteCache
{
	int			ngateways;
	Gateway    *gateways;
	int			nrules;
	Rule	   *rules;			/* in order: priority, id */
} RouteCache;

static MemoryContext route_context = NULL;
static RouteCache *route_cache = NULL;
static Oid	watched_relids[3];

PG_FUNCTION_INFO_V1(pay_route);

static void
RouteCacheInvalidate(Datum arg, Oid relid)
{
	/* only forget it: a lookup in progress may still read the old copy */
	if (relid == InvalidOid || relid == watched_relids[0] || relid == watched_relids[1] ||
		relid == watched_relids[2])
		route_cache = NULL;
}

/* Module set-up, from _PG_init. */
void
OrderRouteInit(void)
{
	CacheRegisterRelcacheCallback(RouteCacheInvalidate, (Datum) 0);
}

/* Read gateways and rules; the caller is connected to SPI. */
static RouteCache *
LoadRouteCache(void)
{
	Oid			pay = get_namespace_oid("pay", false);
	RouteCache *c;
	uint64		i;
	int			rc;

	watched_relids[0] = get_relname_relid("gateways", pay);
	watched_relids[1] = get_relname_relid("routing_rules", pay);
	watched_relids[2] = get_relname_relid("circuit_breakers", pay);
	if (route_context == NULL)
		route_context = AllocSetContextCreate(TopMemoryContext, "pay routing cache", ALLOCSET_SMALL_SIZES);
	MemoryContextReset(route_context);	/* the copy forgotten last */
	c = MemoryContextAllocZero(route_context, sizeof(RouteCache));

	rc = SPI_execute("SELECT name, enabled, id FROM pay.gateways ORDER BY id", false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.gateways: %s", SPI_result_code_string(rc));
	c->ngateways = (int) SPI_processed;
	c->gateways = MemoryContextAllocZero(route_context, sizeof(Gateway) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		strlcpy(c->gateways[i].name, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
				sizeof(c->gateways[i].name));
		c->gateways[i].enabled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}

	rc = SPI_execute("SELECT coalesce(r.merchant_id, 0), coalesce(r.currency::text, ''), g.name, r.id, "
					 "coalesce(r.min_amount, 0), coalesce(r.max_amount, 9223372036854775807), "
					 "r.priority, r.weight "
					 "FROM pay.routing_rules r JOIN pay.gateways g ON g.id = r.gateway_id "
					 "ORDER BY r.priority, r.id", false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.routing_rules: %s", SPI_result_code_string(rc));
	c->nrules = (int) SPI_processed;
	c->rules = MemoryContextAllocZero(route_context, sizeof(Rule) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = SPI_getvalue(row, desc, 3);
		int			g;

		c->rules[i].merchant_id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		c->rules[i].id = DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
		c->rules[i].min_amount = DatumGetInt64(SPI_getbinval(row, desc, 5, &isnull));
		c->rules[i].max_amount = DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
		c->rules[i].priority = DatumGetInt32(SPI_getbinval(row, desc, 7, &isnull));
		c->rules[i].weight = DatumGetInt32(SPI_getbinval(row, desc, 8, &isnull));
		strlcpy(c->rules[i].currency, SPI_getvalue(row, desc, 2), sizeof(c->rules[i].currency));
		for (g = 0; g < c->ngateways && strcmp(c->gateways[g].name, name) != 0; g++)
			;
		c->rules[i].gateway = g;	/* found: both come from one snapshot */
	}

	rc = SPI_execute("SELECT g.name, c.open_until FROM pay.circuit_breakers c "
					 "JOIN pay.gateways g ON c.destination = 'gateway:' || g.name "
					 "WHERE c.state = 'open' AND c.open_until IS NOT NULL", false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.circuit_breakers: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		int			g;

		for (g = 0; g < c->ngateways; g++)
			if (strcmp(c->gateways[g].name, name) == 0)
				c->gateways[g].open_until =
					DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	return c;
}

static const Gateway *
FindGateway(const RouteCache *c, const char *name)
{
	int			g;

	for (g = 0; g < c->ngateways; g++)
		if (strcmp(c->gateways[g].name, name) == 0)
			return &c->gateways[g];
	return NULL;
}

/* Is the gateway's circuit closed (or half-open)?  As pay.gateway_available. */
static bool
GatewayAvailable(const Gateway *g)
{
	return g->open_until == 0 || g->open_until <= GetCurrentTransactionStartTimestamp();
}

/* Does the rule apply to this order? */
static bool
RuleMatches(const RouteCache *c, const Rule *r, int64 merchant_id, const char *currency, int64 amount)
{
	return (r->merchant_id == 0 || r->merchant_id == merchant_id) &&
		(r->currency[0] == '\0' || strcmp(r->currency, currency) == 0) &&
		amount >= r->min_amount && amount <= r->max_amount &&
		r->gateway < c->ngateways && c->gateways[r->gateway].enabled;
}

/*
 * Where in [0, total) an order falls: a hash of its merchant and number,
 * the same in every backend and every release of PostgreSQL 15 (hash_bytes
 * is the hash of hash indexes, whose on-disk format depends on it).
 */
static uint64
OrderPoint(int64 merchant_id, const char *order_no, uint64 total)
{
	uint64		h = hash_bytes_extended((const unsigned char *) order_no, (int) strlen(order_no),
										(uint64) merchant_id);

	return h % total;
}

/*
 * Choose among the available matching rules of one tier, rules[from..to):
 * by weight at the order's point, or (no order number) the heaviest.
 * available[i - from] says which are available; at least one is.
 */
static const Rule *
ChooseInTier(const RouteCache *c, int from, int to, const bool *available,
			 int64 merchant_id, const char *currency, int64 amount, const char *order_no)
{
	const Rule *best = NULL;
	uint64		total = 0;
	uint64		point;
	int			i;

	for (i = from; i < to; i++)
	{
		const Rule *r = &c->rules[i];

		if (!available[i - from] || !RuleMatches(c, r, merchant_id, currency, amount))
			continue;
		total += (uint64) r->weight;
		if (best == NULL || r->weight > best->weight)
			best = r;
	}
	if (order_no == NULL)
		return best;
	point = OrderPoint(merchant_id, order_no, total);
	for (i = from; i < to; i++)
	{
		const Rule *r = &c->rules[i];

		if (!available[i - from] || !RuleMatches(c, r, merchant_id, currency, amount))
			continue;
		if (point < (uint64) r->weight)
			return r;
		point -= (uint64) r->weight;
	}
	return best;				/* not reached: the points add up to total */
}

/* The rule an order goes by (see the head comment); rule NULL when none matches. */
static Route
RouteByRules(const RouteCache *c, int64 merchant_id, const char *currency, int64 amount, const char *order_no)
{
	Route		route = {NULL, NULL};
	const Rule *fallback = NULL;
	bool	   *available = palloc(sizeof(bool) * (c->nrules + 1));
	int			from = 0;

	while (from < c->nrules)
	{
		int			to = from;
		bool		any = false;

		/* one tier: the rules of one priority, in id order */
		while (to < c->nrules && c->rules[to].priority == c->rules[from].priority)
		{
			const Rule *r = &c->rules[to];

			available[to - from] = false;
			if (RuleMatches(c, r, merchant_id, currency, amount))
			{
				if (fallback == NULL)
					fallback = r;
				available[to - from] = GatewayAvailable(&c->gateways[r->gateway]);
				any |= available[to - from];
			}
			to++;
		}
		if (any)
		{
			route.rule = ChooseInTier(c, from, to, available, merchant_id, currency, amount, order_no);
			break;
		}
		from = to;
	}
	if (route.rule == NULL)
		route.rule = fallback;
	if (route.rule != NULL)
		route.gateway = c->gateways[route.rule->gateway].name;
	pfree(available);
	return route;
}

/*
 * Route a new order (see the head comment): the gateway asked for (NULL:
 * by the rules), with order_no NULL for "the heaviest of the tier".  Sets
 * *gateway (palloc'd in the caller's context; NULL: none) and *rule_id
 * (0: no rule).
 */
void
RouteOrder(const char *asked, int64 merchant_id, const char *currency, int64 amount,
		   const char *order_no, char **gateway, int64 *rule_id)
{
	Route		route = {NULL, NULL};

	/* SPI only to load the cache: connecting costs more than routing */
	if (route_cache == NULL)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		route_cache = LoadRouteCache();
		SPI_finish();
	}
	if (asked != NULL)
	{
		const Gateway *g = FindGateway(route_cache, asked);

		if (g == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("gateway: unknown gateway \"%s\"", asked)));
		if (!g->enabled)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("gateway: gateway \"%s\" is disabled", asked)));
		route.gateway = g->name;
	}
	else if (currency != NULL)
		route = RouteByRules(route_cache, merchant_id, currency, amount, order_no);
	/* outlives the cache */
	*gateway = route.gateway ? pstrdup(route.gateway) : NULL;
	*rule_id = route.rule ? route.rule->id : 0;
}

/*
 * The (gateway text, rule_id bigint) record of a route.  Its blessed
 * descriptor is kept per function for the backend's life, not per call
 * site: PL/pgSQL evaluates create_order's call afresh in every transaction,
 * and looking the result type up and blessing it each time cost more than
 * the route itself.
 */
#define ROUTE_RESULT_FUNCTIONS	4

Datum
RouteResult(FunctionCallInfo fcinfo, const char *gateway, int64 rule_id)
{
	static struct
	{
		Oid			fn;
		TupleDesc	desc;
	}			kept[ROUTE_RESULT_FUNCTIONS];
	static int	nkept = 0;
	static int	next_victim = 0;
	Oid			fn = fcinfo->flinfo->fn_oid;
	TupleDesc	desc = NULL;
	Datum		values[2];
	bool		nulls[2];
	int			i;

	for (i = 0; i < nkept && desc == NULL; i++)
		if (kept[i].fn == fn)
			desc = kept[i].desc;
	if (desc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE || desc->natts != 2)
			elog(ERROR, "a route must be returned as a (gateway, rule_id) record");
		desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		MemoryContextSwitchTo(old);
		/* functions re-created (a reinstall) take the oldest slots over */
		if (nkept == ROUTE_RESULT_FUNCTIONS)
		{
			i = next_victim;
			next_victim = (next_victim + 1) % ROUTE_RESULT_FUNCTIONS;
			FreeTupleDesc(kept[i].desc);
		}
		else
			i = nkept++;
		kept[i].fn = fn;
		kept[i].desc = desc;
	}
	values[0] = gateway ? CStringGetTextDatum(gateway) : (Datum) 0;
	nulls[0] = gateway == NULL;
	values[1] = Int64GetDatum(rule_id);
	nulls[1] = rule_id == 0;
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * pay._route(p_gateway text, p_merchant bigint, p_currency text,
 *            p_amount bigint, p_order_no text, OUT gateway text, OUT rule_id bigint)
 *
 * p_order_no NULL: the heaviest rule of the tier (pay.route).  No merchant,
 * currency or amount: no rule.
 */
Datum
pay_route(PG_FUNCTION_ARGS)
{
	char	   *gateway = NULL;
	int64		rule_id = 0;

	if (!PG_ARGISNULL(0) || (!PG_ARGISNULL(1) && !PG_ARGISNULL(2) && !PG_ARGISNULL(3)))
		RouteOrder(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
				   PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
				   PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
				   PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3),
				   PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4)),
				   &gateway, &rule_id);
	PG_RETURN_DATUM(RouteResult(fcinfo, gateway, rule_id));
}
