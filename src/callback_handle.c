/*
 * callback_handle.c — pay.handle_callback(provider, headers, body), the one
 * door PSP callbacks come in by (doc/api.md).
 *
 *   1. find the gateway (a callback to any other name is only counted)
 *      and record the callback as received, before anything can fail
 *      (callback_record.c: an unverified body is kept up to a bound);
 *   2. verify and parse: the parse_callback of the gateway kind's
 *      provider (provider.h), into one event or a batch of them;
 *   3. refuse a reused nonce (PY012);
 *   4. deduplicate by the PSP's event id: a repeat is acknowledged again;
 *   5. apply the event (callback_apply.c); steps 3 to 5 once per event of
 *      a batch;
 *   6. answer what the provider expects (its answer_callback) and record
 *      the verdict.
 *
 * Steps 2-5 run in a subtransaction: whatever they raise is rolled back
 * and becomes the recorded reason (22xxx, 23xxx, PY01x and 54000, a body
 * over a limit: rejected, 4xx, since sending it again cannot help;
 * anything else: error, 500, so that the PSP retries), never an error of
 * handle_callback — except a cancel or statement timeout, which ends the
 * statement (nothing recorded; the PSP retries).  It was PL/pgSQL; in C its statements run from kept
 * plans and nothing is prepared again in each transaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/resowner.h"

#include "pay.h"
#include "callback.h"
#include "metrics.h"
#include "provider.h"
#include "trace_context.h"

extern Datum pay_lower_headers(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(pay_handle_callback);

#define EVENT_ID_MAX 200

static SPIPlanPtr gateway_plan = NULL;
static SPIPlanPtr nonce_plan = NULL;
static SPIPlanPtr event_plan = NULL;
static SPIPlanPtr first_plan = NULL;

bool
CallbackFindGateway(text *provider, CallbackGateway *g)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(provider)};
	bool		isnull;
	HeapTuple	row;
	const Provider *p;

	if (SPI_execute_plan(KeptPlan(&gateway_plan, "SELECT name, kind, options FROM pay.gateways WHERE name = $1",
								  1, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.gateways");
	if (SPI_processed != 1)
		return false;
	row = SPI_tuptable->vals[0];
	/* a gateway whose provider takes no callbacks is, to a callback, no gateway */
	p = ProviderFind(SPI_getvalue(row, SPI_tuptable->tupdesc, 2));
	if (p == NULL || p->parse_callback == NULL)
		return false;
	g->name = SPI_getvalue(row, SPI_tuptable->tupdesc, 1);
	g->kind = SPI_getvalue(row, SPI_tuptable->tupdesc, 2);
	g->options = DatumGetJsonbPCopy(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
	g->provider = p;
	return true;
}

/* INSERT ... ON CONFLICT DO NOTHING of (gateway, key[, callback id]): was the row new? */
static bool
InsertNew(SPIPlanPtr *slot, const char *sql, int nargs, const char *gateway, const char *key, int64 callback_id)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3] = {CStringGetTextDatum(gateway), key ? CStringGetTextDatum(key) : (Datum) 0,
	Int64GetDatum(callback_id)};
	char		nulls[3] = {' ', key ? ' ' : 'n', ' '};

	if (SPI_execute_plan(KeptPlan(slot, sql, nargs, types), values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not run \"%s\"", sql);
	return SPI_processed == 1;
}

/* Step 3: a nonce seen within the window is a replay.  Racing copies wait on the index. */
static void
CheckNonce(const CallbackGateway *g, Jsonb *e)
{
	JsonbValue	v;

	if (getKeyJsonValueFromContainer(&e->root, "nonce", 5, &v) == NULL)
		return;					/* the provider's scheme has no nonce */
	if (!InsertNew(&nonce_plan,
				   "INSERT INTO pay.callback_nonces (gateway, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING",
				   2, g->name, JsonbGetText(e, "nonce"), 0))
		ereport(ERROR,
				(errcode(ERRCODE_PAY_NONCE_REUSED),
				 errmsg("nonce \"%s\" was already used", JsonbGetText(e, "nonce"))));
}

/* Step 4's repeat: the callback that applied this event first. */
static int64
FirstCallback(const CallbackGateway *g, const char *event_id)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(g->name), CStringGetTextDatum(event_id)};
	bool		isnull;

	if (SPI_execute_plan(KeptPlan(&first_plan,
								  "SELECT callback_id FROM pay.callback_events WHERE gateway = $1 AND event_id = $2",
								  2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "event \"%s\" of gateway \"%s\" vanished", event_id, g->name);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Steps 3 to 5 for one event: its verdict, order and outcome in *v. */
static void
ProcessEvent(const CallbackGateway *g, Jsonb *event, int64 callback_id, Verdict *v)
{
	char	   *event_id = JsonbGetText(event, "event_id");

	if (event_id == NULL || pg_mbstrlen(event_id) > EVENT_ID_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback has no usable event id")));
	CheckNonce(g, event);
	if (!InsertNew(&event_plan,
				   "INSERT INTO pay.callback_events (gateway, event_id, callback_id) VALUES ($1, $2, $3) "
				   "ON CONFLICT DO NOTHING",
				   3, g->name, event_id, callback_id))
	{
		v->verdict = "duplicate";
		v->outcome = psprintf("duplicate of callback %lld", (long long) FirstCallback(g, event_id));
		return;
	}
	CallbackApply(g, event, callback_id, psprintf("callback %lld", (long long) callback_id),
				  &v->order_id, &v->outcome);
	v->verdict = "accepted";
}

/*
 * A batch: a PSP that sends several events in one request (Adyen's
 * notificationItems) has its parser return them as a JSON array, every one
 * verified.  Each is deduplicated by its own event id and applied in turn,
 * all in this one subtransaction: an error in any undoes the whole batch,
 * which the PSP then sends again, as it would a single event.  The batch
 * keeps one pay.callbacks row (its body is one request, recorded before
 * anything can fail): accepted when any event was new, a duplicate when
 * none was; its event ids and types joined by ", "; the first order an
 * event moved; the outcome of each event after its id (of a batch of one:
 * its outcome, as for a single event).  pay.callback_events names the row
 * for each event.
 */
static void
ProcessBatch(const CallbackGateway *g, Jsonb *events, int64 callback_id, Verdict *v)
{
	static const char *const keys[] = {"event_id", "type"};
	StringInfoData ids,
				types,
				outcomes;
	JsonbValue *elem;
	char	   *values[2];
	char	   *last_outcome = NULL;
	int			n = 0;

	if (JsonContainerSize(&events->root) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback has no events")));
	initStringInfo(&ids);
	initStringInfo(&types);
	initStringInfo(&outcomes);
	v->verdict = "duplicate";
	for (int i = 0; (elem = getIthJsonbValueFromContainer(&events->root, i)) != NULL; i++)
	{
		Jsonb	   *event = JsonbValueToJsonb(elem);
		char	   *type = JsonbGetText(event, "type");
		Verdict		one = {0};

		ProcessEvent(g, event, callback_id, &one);
		if (strcmp(one.verdict, "accepted") == 0)
			v->verdict = "accepted";
		if (v->order_id == 0)
			v->order_id = one.order_id;
		appendStringInfo(&ids, "%s%s", i ? ", " : "", JsonbGetText(event, "event_id"));
		appendStringInfo(&types, "%s%s", i ? ", " : "", type ? type : "");
		appendStringInfo(&outcomes, "%s%s: %s", i ? "; " : "", JsonbGetText(event, "event_id"),
						 one.outcome ? one.outcome : "");
		last_outcome = one.outcome;
		n++;
	}
	values[0] = ids.data;
	values[1] = types.data;
	v->event = EventBuild(keys, values, 2);
	/* a batch of one reads as a single event */
	v->outcome = n == 1 ? last_outcome : outcomes.data;
}

/* Steps 2 to 5; raises for anything the callback is refused for. */
static void
Process(const CallbackGateway *g, Jsonb *headers, text *body, int64 callback_id, Verdict *v)
{
	Jsonb	   *parsed = g->provider->parse_callback(g, headers, body);

	if (JB_ROOT_IS_ARRAY(parsed) && !JB_ROOT_IS_SCALAR(parsed))
	{
		ProcessBatch(g, parsed, callback_id, v);
		return;
	}
	v->event = parsed;
	ProcessEvent(g, parsed, callback_id, v);
}

/* Process in a subtransaction: an error becomes the verdict. */
static void
ProcessSafely(const CallbackGateway *g, Jsonb *headers, text *body, int64 callback_id, Verdict *v)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		Process(g, headers, body, callback_id, v);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* a cancel or statement timeout ends the statement, as PL/pgSQL's WHEN OTHERS lets it */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ASSERT_FAILURE)
			ReThrowError(edata);

		v->state = pstrdup(unpack_sql_state(edata->sqlerrcode));
		v->reason = edata->message;
		/* ours to fix (a missing secret, a bug): 500 so that the PSP retries later */
		v->verdict = (strncmp(v->state, "PY01", 4) == 0 || strncmp(v->state, "22", 2) == 0 ||
					  strncmp(v->state, "23", 2) == 0 || strcmp(v->state, "54000") == 0) ?
			"rejected" : "error";
		v->order_id = 0;
		v->outcome = NULL;
	}
	PG_END_TRY();
}

/* Was the callback verified: accepted, or a duplicate of one? */
static bool
Verified(const Verdict *v)
{
	return strcmp(v->verdict, "accepted") == 0 || strcmp(v->verdict, "duplicate") == 0;
}

/* Count the verdict (and a bad signature) by gateway; g.name is NULL for a name that is no gateway. */
static void
CountVerdict(const char *gateway, const Verdict *v)
{
	int			slot;

	if (!MetricsActive())
		return;
	slot = MetricGatewaySlot(gateway);
	MetricsCountAtCommit(METRIC_CALLBACKS + slot * N_VERDICTS + MetricVerdictIndex(v->verdict));
	if (v->state != NULL && strcmp(v->state, "PY010") == 0)
		MetricsCountAtCommit(METRIC_SIGNATURE_FAILURES + slot);
}

/* Step 6: the status, and the content type and body the gateway's provider expects. */
static void
Answer(const CallbackGateway *g, const Verdict *v, int *status, const char **type, char **body)
{
	bool		ok = Verified(v);
	const char *state = v->state ? v->state : "";
	const char *reason =
		strcmp(state, "PY010") == 0 ? "signature invalid" :
		strcmp(state, "PY011") == 0 ? "timestamp outside the window" :
		strcmp(state, "PY012") == 0 ? "nonce reused" :
		strcmp(state, "unknown_gateway") == 0 ? "unknown gateway" :
		strcmp(state, "54000") == 0 ? "callback exceeds a limit" :
		strcmp(v->verdict, "error") == 0 ? "internal error" : "malformed or unknown callback";

	*status = ok ? 200 :
		strcmp(state, "unknown_gateway") == 0 ? 404 :
		(strcmp(state, "PY010") == 0 || strcmp(state, "PY011") == 0 || strcmp(state, "PY012") == 0) ? 401 :
		strcmp(v->verdict, "error") == 0 ? 500 : 400;
	if (g->provider != NULL)
		g->provider->answer_callback(ok, reason, type, body);
	else
		ProviderAnswerJson(ok, reason, type, body);
}

/* pay.handle_callback(provider text, headers jsonb, body text) -> SETOF pay.http_response, one row */
Datum
pay_handle_callback(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *provider = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	text	   *body = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	Datum		headers = PG_ARGISNULL(1) ? DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) : PG_GETARG_DATUM(1);
	Verdict		v = {0};
	CallbackGateway g = {0};
	int64		id = 0;
	bool		cut = false;
	int			status;
	const char *type;
	char	   *answer;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (provider == NULL || !CallbackFindGateway(provider, &g))
	{
		/* anyone can send these: counted, never stored */
		CallbackCountUnknown(provider, body ? VARSIZE_ANY_EXHDR(body) : 0);
		v.verdict = "rejected";
		v.state = "unknown_gateway";
	}
	else
	{
		Jsonb	   *lower = DatumGetJsonbP(DirectFunctionCall1(pay_lower_headers, headers));

		/* the callback row and what it causes store the trace it carried */
		TraceAdoptHeader(lower);
		id = CallbackRecord(provider, headers, body, &cut);
		ProcessSafely(&g, lower, body, id, &v);
	}

	Answer(&g, &v, &status, &type, &answer);
	CountVerdict(g.name, &v);
	if (id != 0)
		CallbackRecordVerdict(id, &v, status, cut && Verified(&v) ? body : NULL);
	values[0] = Int32GetDatum(status);
	values[1] = CStringGetTextDatum(type);
	values[2] = CStringGetTextDatum(answer);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	SPI_finish();
	return (Datum) 0;
}
