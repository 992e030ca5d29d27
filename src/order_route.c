/*
 * order_route.c — pay._route: the gateway a new order goes to.
 *
 * The gateway asked for, if it exists and is enabled; otherwise the first
 * routing rule (lowest priority, then oldest) whose merchant and currency
 * match (NULL matches any) and whose gateway is enabled and available, i.e.
 * its circuit is not open (pay.gateway_available, fed by the dispatcher's
 * breakers).  When every matching gateway's circuit is open, the first
 * matching enabled one is taken anyway: the order still needs a gateway,
 * and the dispatcher holds its requests until the circuit half-opens.
 * No rule matches: no gateway (NULL).
 *
 * Rules and gateways are cached per backend, because create_order runs
 * this on every order and the query cost more than the order's INSERT.
 * Statement triggers on pay.routing_rules and pay.gateways send a relcache
 * invalidation for their table on every change; the callback below drops
 * the cache (also when the changing transaction rolls back, because
 * PostgreSQL replays a rolled-back transaction's invalidations locally).
 * Circuit state changes all the time and is read per order, and only when
 * a rule matches.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pay.h"

#define GATEWAY_NAME_MAX	64

typedef struct Gateway
{
	char		name[GATEWAY_NAME_MAX + 1];
	bool		enabled;
} Gateway;

typedef struct Rule
{
	int64		merchant_id;	/* 0: any */
	char		currency[4];	/* "": any */
	int			gateway;		/* index into gateways */
} Rule;

typedef struct RouteCache
{
	int			ngateways;
	Gateway    *gateways;
	int			nrules;
	Rule	   *rules;			/* in order: priority, id */
} RouteCache;

static MemoryContext route_context = NULL;
static RouteCache *route_cache = NULL;
static Oid	watched_relids[2];
static SPIPlanPtr available_plan = NULL;

PG_FUNCTION_INFO_V1(pay_route);

static void
RouteCacheInvalidate(Datum arg, Oid relid)
{
	/* only forget it: a lookup in progress may still read the old copy */
	if (relid == InvalidOid || relid == watched_relids[0] || relid == watched_relids[1])
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

	rc = SPI_execute("SELECT coalesce(r.merchant_id, 0), coalesce(r.currency::text, ''), g.name "
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
		strlcpy(c->rules[i].currency, SPI_getvalue(row, desc, 2), sizeof(c->rules[i].currency));
		for (g = 0; g < c->ngateways && strcmp(c->gateways[g].name, name) != 0; g++)
			;
		c->rules[i].gateway = g;	/* found: both come from one snapshot */
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

/* Is the gateway's circuit closed (or half-open)?  Connected to SPI. */
static bool
GatewayAvailable(const char *name)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(name);
	bool		isnull;
	int			rc;

	rc = SPI_execute_plan(KeptPlan(&available_plan, "SELECT pay.gateway_available($1)", 1, &type),
						  &value, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the circuit of gateway \"%s\"", name);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* The gateway of the first matching rule (see the head comment), or NULL. */
static const char *
RouteByRules(const RouteCache *c, int64 merchant_id, const char *currency)
{
	const char *fallback = NULL;
	int			i;

	for (i = 0; i < c->nrules; i++)
	{
		const Rule *r = &c->rules[i];
		const Gateway *g;

		if ((r->merchant_id != 0 && r->merchant_id != merchant_id) ||
			(r->currency[0] != '\0' && strcmp(r->currency, currency) != 0) ||
			r->gateway >= c->ngateways)
			continue;
		g = &c->gateways[r->gateway];
		if (!g->enabled)
			continue;
		if (GatewayAvailable(g->name))
			return g->name;
		if (fallback == NULL)
			fallback = g->name;
	}
	return fallback;
}

/* pay._route(gateway text, merchant_id bigint, currency text) -> text */
Datum
pay_route(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	const char *result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (route_cache == NULL)
		route_cache = LoadRouteCache();
	if (!PG_ARGISNULL(0))
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
		const Gateway *g = FindGateway(route_cache, name);

		if (g == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("gateway: unknown gateway \"%s\"", name)));
		if (!g->enabled)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("gateway: gateway \"%s\" is disabled", name)));
		result = g->name;
	}
	else if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		result = NULL;
	else
		result = RouteByRules(route_cache, PG_GETARG_INT64(1), text_to_cstring(PG_GETARG_TEXT_PP(2)));
	result = result ? MemoryContextStrdup(caller, result) : NULL;	/* outlives SPI and the cache */
	SPI_finish();
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
