/*
 * answer_event.c — pay._apply_answer_event(gateway, event, cause): a PSP's
 * answer to a query, read into the event a callback with the same news
 * would have become (81_psp_answers.sql), applied by the callbacks' own
 * code (callback_apply.c).  So a query moves an order exactly as the
 * callback would: the same settling UPDATE and ledger posting, the same
 * merchant notification, the same anomalies; and a query that races the
 * callback of the same payment books it once (the settling UPDATE is
 * conditional on the order still being payable, and the loser finds the
 * order paid by the same transaction).
 *
 * Unlike a callback the answer has no pay.callbacks row: the order's
 * events record cause ("query <outbox id>") instead, and the event's
 * "cause" member says the same to the PL/pgSQL path.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "pay.h"
#include "callback.h"

PG_FUNCTION_INFO_V1(pay_apply_answer_event);

/* pay._apply_answer_event(gateway text, event jsonb, cause text) -> text, the outcome */
Datum
pay_apply_answer_event(PG_FUNCTION_ARGS)
{
	text	   *gateway = PG_GETARG_TEXT_PP(0);
	Jsonb	   *event = PG_GETARG_JSONB_P(1);
	char	   *cause = text_to_cstring(PG_GETARG_TEXT_PP(2));
	MemoryContext caller = CurrentMemoryContext;
	CallbackGateway g = {0};
	int64		order_id;
	char	   *outcome;
	text	   *result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!CallbackFindGateway(gateway, &g))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gateway \"%s\" does not exist or takes no events", text_to_cstring(gateway))));
	CallbackApply(&g, event, 0, cause, &order_id, &outcome);
	MemoryContextSwitchTo(caller);
	result = cstring_to_text(outcome ? outcome : "");
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
