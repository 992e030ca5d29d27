/*
 * restore.c — is the row being written a row that a restore brings back?
 *
 * pg_dump writes the rows of pay's tables as COPY ... FROM stdin, and
 * pg_restore (or psql, for a plain dump) replays them into the tables that
 * CREATE EXTENSION made, with every trigger live.  Rules about how a row may
 * come into being (a new order starts pending) do not fit a row that already
 * existed when the dump was taken: a restored order may be paid, refunded or
 * cancelled.  Rules about what a row must be (amounts, verdicts, states)
 * still apply to it.
 *
 * A restore is recognised as a COPY FROM run by a superuser: only a
 * superuser can restore pay (its tables belong to the extension owner, and
 * the extension needs a superuser to create), and a superuser may disable
 * any trigger anyway, so this hands no one a power they lacked.  The
 * statement is read from the text the client sent (debug_query_string):
 * it is set for every statement of the simple and extended protocols, and
 * a trigger has no other way to learn that COPY fired it.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"

#include "pay.h"

PG_FUNCTION_INFO_V1(pay_restoring);

/* Does the client's statement text begin with the keyword COPY? */
static bool
StatementIsCopy(const char *sql)
{
	if (sql == NULL)
		return false;
	while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
		sql++;
	return pg_strncasecmp(sql, "copy", 4) == 0 &&
		(sql[4] == ' ' || sql[4] == '\t' || sql[4] == '\n' || sql[4] == '\r');
}

bool
RestoringRows(void)
{
	return superuser() && StatementIsCopy(debug_query_string);
}

/* pay._restoring() for the PL/pgSQL triggers of the seeded tables. */
Datum
pay_restoring(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(RestoringRows());
}
