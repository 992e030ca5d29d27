/*
 * outbox_check.c — what every row of pay.outbox must be, checked by a
 * BEFORE INSERT OR UPDATE row trigger (ENABLE ALWAYS) instead of CHECK
 * constraints: PostgreSQL 15 re-reads and re-plans a table's CHECK
 * constraints on every statement that writes it, and the outbox is written
 * by every payment (the notification) and by the dispatcher for every
 * attempt.  Rows are refused with check_violation, as a CHECK would, and
 * the message names the column.
 *
 *   kind             psp_request | merchant_notification
 *   destination      gateway:<name> | merchant:<code>, name 1-64 of [A-Za-z0-9_.-]
 *   operation        [a-z] then up to 63 of [a-z0-9_.:-]
 *   params           a JSON object
 *   idempotency_key  1 to 255 characters
 *   state            pending | in_flight | done | dead
 *   attempts >= 0, attempts_max 1 to 1000
 *   claimed_at       set exactly when in_flight
 *   finished_at      set exactly when done or dead
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(pay_outbox_check);

static void
Refuse(const char *column, const char *rule, const char *value)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("outbox %s must be %s%s%s%s", column, rule,
					value ? ", not \"" : "", value ? value : "", value ? "\"" : "")));
}

/* A column's text, or NULL (NOT NULL columns are refused by PostgreSQL). */
static char *
Text(HeapTuple row, TupleDesc desc, const char *column)
{
	return SPI_getvalue(row, desc, SPI_fnumber(desc, column));
}

static bool
IsNull(HeapTuple row, TupleDesc desc, const char *column)
{
	bool		isnull;

	(void) SPI_getbinval(row, desc, SPI_fnumber(desc, column), &isnull);
	return isnull;
}

static bool
NameChar(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '.' || c == '-';
}

static void
CheckDestination(const char *d)
{
	const char *name = strncmp(d, "gateway:", 8) == 0 ? d + 8
		: strncmp(d, "merchant:", 9) == 0 ? d + 9 : NULL;
	size_t		len = name ? strlen(name) : 0;
	size_t		i;

	for (i = 0; name && i < len; i++)
		if (!NameChar(name[i]))
			name = NULL;
	if (name == NULL || len < 1 || len > 64)
		Refuse("destination", "gateway:<name> or merchant:<code> (1 to 64 of A-Z a-z 0-9 _ . -)", d);
}

static void
CheckOperation(const char *op)
{
	size_t		len = strlen(op);
	size_t		i;
	bool		ok = len >= 1 && len <= 64 && op[0] >= 'a' && op[0] <= 'z';

	for (i = 1; ok && i < len; i++)
		ok = (op[i] >= 'a' && op[i] <= 'z') || (op[i] >= '0' && op[i] <= '9') ||
			op[i] == '_' || op[i] == '.' || op[i] == ':' || op[i] == '-';
	if (!ok)
		Refuse("operation", "a lower-case letter and up to 63 of a-z 0-9 _ . : -", op);
}

static void
CheckRow(HeapTuple row, TupleDesc desc)
{
	char	   *kind = Text(row, desc, "kind");
	char	   *destination = Text(row, desc, "destination");
	char	   *operation = Text(row, desc, "operation");
	char	   *key = Text(row, desc, "idempotency_key");
	char	   *state = Text(row, desc, "state");
	char	   *attempts = Text(row, desc, "attempts");
	char	   *attempts_max = Text(row, desc, "attempts_max");
	bool		isnull;
	Datum		params = SPI_getbinval(row, desc, SPI_fnumber(desc, "params"), &isnull);
	bool		in_flight,
				finished;

	if (kind && strcmp(kind, "psp_request") != 0 && strcmp(kind, "merchant_notification") != 0)
		Refuse("kind", "psp_request or merchant_notification", kind);
	if (destination)
		CheckDestination(destination);
	if (operation)
		CheckOperation(operation);
	if (!isnull && !JB_ROOT_IS_OBJECT(DatumGetJsonbP(params)))
		Refuse("params", "a JSON object", NULL);
	if (key && (key[0] == '\0' || pg_mbstrlen(key) > 255))
		Refuse("idempotency_key", "1 to 255 characters", NULL);
	if (attempts && atoi(attempts) < 0)
		Refuse("attempts", "0 or more", attempts);
	if (attempts_max && (atoi(attempts_max) < 1 || atoi(attempts_max) > 1000))
		Refuse("attempts_max", "between 1 and 1000", attempts_max);
	if (state == NULL)
		return;
	in_flight = strcmp(state, "in_flight") == 0;
	finished = strcmp(state, "done") == 0 || strcmp(state, "dead") == 0;
	if (!in_flight && !finished && strcmp(state, "pending") != 0)
		Refuse("state", "pending, in_flight, done or dead", state);
	if (in_flight == IsNull(row, desc, "claimed_at"))
		Refuse("claimed_at", "set exactly while the row is in_flight", NULL);
	if (finished == IsNull(row, desc, "finished_at"))
		Refuse("finished_at", "set exactly when the row is done or dead", NULL);
}

/* BEFORE INSERT OR UPDATE FOR EACH ROW on pay.outbox. */
Datum
pay_outbox_check(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	HeapTuple	row;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event))
		elog(ERROR, "pay_outbox_check must be a BEFORE row trigger");
	row = TRIGGER_FIRED_BY_UPDATE(trig->tg_event) ? trig->tg_newtuple : trig->tg_trigtuple;
	CheckRow(row, RelationGetDescr(trig->tg_relation));
	return PointerGetDatum(row);
}
