/*
 * provider_answer.c — what every provider's answer reader shares: the
 * check that a member of the answer is ours, the body read as a JSON
 * object (and the body of a refusal, which may be a proxy's error page),
 * and the members of the summary it builds (81_psp_answers.sql describes
 * the summary).
 */
#include "postgres.h"

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "utils/resowner.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"

void
ProviderExpect(const char *what, const char *theirs, const char *ours, bool required)
{
	if (theirs == NULL && !required)
		return;
	/* IS DISTINCT FROM: both missing is a match */
	if (theirs == NULL && ours == NULL)
		return;
	if (theirs == NULL || ours == NULL || strcmp(theirs, ours) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the answer's %s is \"%s\", not ours (\"%s\")", what, theirs ? theirs : "(none)",
						ours ? ours : "<NULL>")));
}

Jsonb *
ProviderAnswerBody(text *body)
{
	if (body == NULL || VARSIZE_ANY_EXHDR(body) == 0)
		return EventBuild(NULL, NULL, 0);
	return DatumGetJsonbP(DirectFunctionCall1(pay_json_body, PointerGetDatum(body)));
}

/*
 * The parse runs in a subtransaction, as its error is caught: only "not
 * JSON" (22P02) and "nested too deep" (54000) make the fallback, anything
 * else is raised again.
 */
Jsonb *
ProviderRefusalBody(int32 status, text *body)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Jsonb	   *volatile v = NULL;
	ErrorData  *volatile e = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		v = ProviderAnswerBody(body);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (e != NULL)
	{
		static const char *const keys[] = {"message"};
		char	   *text = VARDATA_ANY(body);
		int			len = pg_mbcharcliplen(text, VARSIZE_ANY_EXHDR(body), 200);
		char	   *values[1];

		if (e->sqlerrcode != ERRCODE_INVALID_TEXT_REPRESENTATION &&
			e->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
			ReThrowError(e);
		values[0] = psprintf("HTTP %d: %.*s", status, len, text);
		v = EventBuild(keys, values, 1);
	}
	return v;
}

void
ProviderPushJsonb(JsonbParseState **state, const char *key, Jsonb *value)
{
	JsonbValue	v;

	if (value == NULL)
	{
		ProviderPushText(state, key, NULL);
		return;
	}
	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	v.type = jbvBinary;
	v.val.binary.data = &value->root;
	v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	pushJsonbValue(state, WJB_VALUE, &v);
}

void
ProviderPushBool(JsonbParseState **state, const char *key, int value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	if (value < 0)
		v.type = jbvNull;
	else
	{
		v.type = jbvBool;
		v.val.boolean = value != 0;
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

Jsonb *
ProviderAnswerRefused(int final, const char *reason, const char *code, int already_paid)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "verdict", "refused");
	ProviderPushBool(&state, "final", final);
	ProviderPushText(&state, "reason", reason);
	ProviderPushText(&state, "code", code);
	ProviderPushBool(&state, "already_paid", already_paid);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

Jsonb *
ProviderAnswerApplied(const char *psp_txn_id, Jsonb *next_action, Jsonb *event, Jsonb *refund)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "verdict", "applied");
	if (psp_txn_id != NULL)
		ProviderPushText(&state, "psp_txn_id", psp_txn_id);
	if (next_action != NULL)
		ProviderPushJsonb(&state, "next_action", next_action);
	if (event != NULL)
		ProviderPushJsonb(&state, "event", event);
	if (refund != NULL)
		ProviderPushJsonb(&state, "refund", refund);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

char *
ProviderQueryEventId(const ProviderAnswer *ans)
{
	return psprintf("query:%lld", (long long) ProviderRowInt64(ans->request.outbox, "id"));
}

Jsonb *
ProviderRefundSummary(const char *psp_refund_id, const char *status)
{
	static const char *const keys[] = {"status", "psp_refund_id"};
	char	   *values[2] = {(char *) status, (char *) psp_refund_id};

	return EventBuild(keys, values, psp_refund_id != NULL ? 2 : 1);
}

CallbackGateway
ProviderAnswerGateway(const ProviderAnswer *ans)
{
	CallbackGateway g;

	g.name = ProviderRowText(ans->request.gateway, "name");
	g.kind = ProviderRowText(ans->request.gateway, "kind");
	g.options = ProviderRowJsonb(ans->request.gateway, "options");
	g.provider = ProviderFind(g.kind);
	return g;
}
