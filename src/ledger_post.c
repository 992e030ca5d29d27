/*
 * ledger_post.c — pay._post, the core of every ledger posting, in C.
 *
 * Lines arrive resolved to account ids.  The posting must balance in each
 * currency (PY004); it writes the posting, its entries (in line order) and
 * then moves the balances in account-id order — a fixed lock order, so two
 * postings never deadlock on each other's accounts — refusing to take a
 * non-negative account below zero, or below what its holds reserve
 * (PY003).  An account without a floor is
 * split into slots and this backend adds to its own slot (ledger_slot.c),
 * so one merchant's payments do not queue on one row.
 *
 * It was PL/pgSQL; in C the account details come from lookup_cache.c and
 * its statements run from saved plans, which halves its cost.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "pay.h"
#include "lookup_cache.h"

#define POST_LINES_MAX	100

typedef struct Line
{
	AccountInfo account;
	int64		amount;
} Line;

static SPIPlanPtr posting_plan = NULL;
static SPIPlanPtr balance_plan = NULL;

PG_FUNCTION_INFO_V1(pay_post);

/* The lines of the two arrays, each with its account's details. */
static int
ReadLines(const char *ref, ArrayType *accounts, ArrayType *amounts, Line *lines)
{
	Datum	   *ids,
			   *sums;
	bool	   *id_nulls,
			   *sum_nulls;
	int			n,
				m,
				i;

	deconstruct_array(accounts, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &ids, &id_nulls, &n);
	deconstruct_array(amounts, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &sums, &sum_nulls, &m);
	if (n != m || n < 1 || n > POST_LINES_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("posting \"%s\" needs 1 to %d lines with one amount each", ref, POST_LINES_MAX)));
	for (i = 0; i < n; i++)
	{
		if (id_nulls[i] || sum_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("posting \"%s\": line %d has no account or no amount", ref, i + 1)));
		if (!LookupAccount(DatumGetInt64(ids[i]), &lines[i].account))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("posting \"%s\": account %lld does not exist", ref,
							(long long) DatumGetInt64(ids[i]))));
		lines[i].amount = DatumGetInt64(sums[i]);
	}
	return n;
}

/*
 * Refuse a posting whose lines do not sum to zero in some currency (the
 * first such currency in code order is named).  Sums are overflow-checked.
 */
static void
CheckBalanced(const char *ref, const Line *lines, int n)
{
	const char *worst = NULL;
	int64		worst_total = 0;
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		int64		total = 0;
		bool		first = true;

		for (j = 0; j < n; j++)
		{
			if (strcmp(lines[j].account.currency, lines[i].account.currency) != 0)
				continue;
			if (j < i)
			{
				first = false;	/* this currency was summed already */
				break;
			}
			if (pg_add_s64_overflow(total, lines[j].amount, &total))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("posting \"%s\": the %s lines overflow a bigint", ref,
								lines[i].account.currency)));
		}
		if (first && total != 0 &&
			(worst == NULL || strcmp(lines[i].account.currency, worst) < 0))
		{
			worst = lines[i].account.currency;
			worst_total = total;
		}
	}
	if (worst != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_UNBALANCED),
				 errmsg("posting \"%s\" does not balance in %s: its lines sum to %lld",
						ref, worst, (long long) worst_total),
				 errhint("The lines of a posting must sum to zero in each currency.")));
}

#ifdef USE_ASSERT_CHECKING
/*
 * The invariant again, by another road than CheckBalanced: for each line,
 * the 128-bit sum of every line in its currency is zero.
 */
static bool
SumsToZeroPerCurrency(const Line *lines, int n)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		int128		total = 0;

		for (j = 0; j < n; j++)
			if (strcmp(lines[j].account.currency, lines[i].account.currency) == 0)
				total += lines[j].amount;
		if (total != 0)
			return false;
	}
	return true;
}
#endif

/*
 * INSERT the posting and its entries (in line order) in one statement; the
 * posting's id.
 */
static int64
WritePosting(const char *ref, Datum order_id, bool order_null, ArrayType *accounts,
			 ArrayType *amounts, const Line *lines, int n)
{
	Oid			types[5] = {TEXTOID, INT8OID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
	Datum		values[5];
	char		nulls[5] = {' ', order_null ? 'n' : ' ', ' ', ' ', ' '};
	Datum	   *currencies = palloc(n * sizeof(Datum));
	bool		isnull;
	int			rc,
				i;

	for (i = 0; i < n; i++)
		currencies[i] = CStringGetTextDatum(lines[i].account.currency);
	values[0] = CStringGetTextDatum(ref);
	values[1] = order_id;
	values[2] = PointerGetDatum(accounts);
	values[3] = PointerGetDatum(amounts);
	values[4] = PointerGetDatum(construct_array(currencies, n, TEXTOID, -1, false, TYPALIGN_INT));
	rc = SPI_execute_plan(KeptPlan(&posting_plan,
								   "WITH p AS (INSERT INTO pay.postings (ref, order_id) VALUES ($1, $2) RETURNING id), "
								   "e AS (INSERT INTO pay.entries (posting_id, account_id, amount, currency) "
								   "SELECT p.id, l.account_id, l.amount, l.currency::pg_catalog.bpchar "
								   "FROM p, ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), "
								   "pg_catalog.unnest($5)) WITH ORDINALITY AS l(account_id, amount, currency, n) "
								   "ORDER BY l.n RETURNING 1) "
								   "SELECT p.id, (SELECT pg_catalog.count(*) FROM e) FROM p",
								   5, types),
						  values, nulls, false, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1 ||
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) != n)
		elog(ERROR, "could not write posting \"%s\": %s", ref, SPI_result_code_string(rc));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static int
CompareLineAccount(const void *a, const void *b)
{
	int64		x = ((const Line *) a)->account.id;
	int64		y = ((const Line *) b)->account.id;

	return (x > y) - (x < y);
}

/*
 * Add each account's net amount to its balance, in account-id order (the
 * lines are sorted here), and refuse to take a floored account below zero.
 */
static void
MoveBalances(const char *ref, Line *lines, int n)
{
	Oid			types[3] = {INT8OID, INT8OID, INT2OID};
	int			i = 0;
	int128		moved PG_USED_FOR_ASSERTS_ONLY = 0;

	qsort(lines, n, sizeof(Line), CompareLineAccount);
	while (i < n)
	{
		const AccountInfo *a = &lines[i].account;
		int64		delta = 0;
		int64		balance;
		int64		held;
		int			slots = a->slots;
		Datum		vals[3];
		bool		isnull;
		int			rc;

		for (; i < n && lines[i].account.id == a->id; i++)
			if (pg_add_s64_overflow(delta, lines[i].amount, &delta))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("posting \"%s\": the lines of account \"%s\" overflow a bigint", ref, a->code)));
		vals[0] = Int64GetDatum(delta);
		vals[1] = Int64GetDatum(a->id);
		vals[2] = Int16GetDatum(slots <= 1 ? 0 : BackendSlot(slots));
		rc = SPI_execute_plan(KeptPlan(&balance_plan,
									   "UPDATE pay.account_balances SET balance = balance + $1 "
									   "WHERE account_id = $2 AND slot = $3 RETURNING balance, held",
									   3, types),
							  vals, NULL, false, 0);
		if (rc != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
			elog(ERROR, "account \"%s\" has no balance row for its slot", a->code);
		balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		held = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		/*
		 * The row lock this UPDATE took also serialises the holds on the
		 * account (pay._hold locks the same row), so balance and held are
		 * current: a posting may spend only what no hold reserves.
		 */
		if (a->non_negative && balance - held < 0)
			ereport(ERROR,
					(errcode(ERRCODE_PAY_INSUFFICIENT_FUNDS),
					 errmsg("insufficient funds in account \"%s\"", a->code),
					 errdetail("The posting \"%s\" would leave a balance of %lld, of which %lld is held.",
							   ref, (long long) balance, (long long) held)));
		/* a floored account keeps one balance row, so this is its balance */
		Assert(!a->non_negative || (slots == 1 && balance >= 0 && held >= 0 && balance >= held));
		/* only a floored account is held */
		Assert(a->non_negative || held == 0);
		moved += delta;
	}
	/* every line's amount reached a balance: the net of all of them is zero */
	Assert(moved == 0);
}

/*
 * One balanced posting of lines already resolved to account ids (int8[]
 * accounts and amounts): the posting's id.  For pay._post and the C callers
 * that settle an order (order_settle.c).
 */
int64
LedgerPost(const char *ref, Datum order_id, bool order_null, ArrayType *accounts, ArrayType *amounts)
{
	Line	   *lines = palloc(sizeof(Line) * POST_LINES_MAX);
	int			n = ReadLines(ref, accounts, amounts, lines);
	int64		posting;

	CheckBalanced(ref, lines, n);
	Assert(SumsToZeroPerCurrency(lines, n));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	posting = WritePosting(ref, order_id, order_null, accounts, amounts, lines, n);
	MoveBalances(ref, lines, n);
	SPI_finish();
	return posting;
}

/*
 * pay._post(ref text, order_id bigint, accounts bigint[], amounts bigint[])
 * -> bigint, the posting's id.  Called only by pay's own functions.
 */
Datum
pay_post(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a posting needs a ref, accounts and amounts")));
	PG_RETURN_INT64(LedgerPost(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							   PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1), PG_ARGISNULL(1),
							   PG_GETARG_ARRAYTYPE_P(2), PG_GETARG_ARRAYTYPE_P(3)));
}
