/*
 * provider_stripe_statement.c — a Stripe statement fetch
 * (89_statement_fetch.sql), operations of the Stripe provider:
 *
 *   fetch_statement       POST /v1/reporting/report_runs: a report run of
 *                         balance_change_from_activity.itemized.3 for one
 *                         UTC day (params interval_start, interval_end)
 *   fetch_statement_poll  GET /v1/reporting/report_runs/<params.report_run>
 *   fetch_statement_file  GET params.url (checked to be under the gateway's
 *                         base_url or on files.stripe.com before it was
 *                         queued, so the API key goes nowhere else)
 *
 * All with the API key; the first with the row's Idempotency-Key, so a
 * retried step does not ask for a second report.  The answer to the first
 * two is the report run: pending, polled again a minute later (a poll
 * step per answer, keyed by the run and the row that asked); succeeded,
 * its file fetched (keyed by the run, so it is imported once); anything
 * else refused.  The file, a CSV, is imported as downloaded
 * (stripe_itemized_csv).
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"
#include "secret_store.h"

/* The columns pay reads (statement import), plus the order reference pay puts in the metadata. */
static const char *const report_columns[] = {
	"balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross", "fee", "net",
	"reporting_category", "source_id", "description", "automatic_payout_id", "payment_intent_id",
	"payment_metadata[order_id]",
};

#define N_COLUMNS lengthof(report_columns)

/* A member of the row's params, else 22023 naming it. */
static char *
RowParam(const ProviderRequest *req, const char *name)
{
	char	   *v = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), name);

	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: outbox row %lld names none", name, (long long) ProviderRowInt64(req->outbox, "id"))));
	return v;
}

/* The report run's form: its type, the day's interval and the columns. */
static char *
ReportRunForm(const ProviderRequest *req)
{
	const char *keys[3 + N_COLUMNS];
	char	   *values[3 + N_COLUMNS];

	keys[0] = "report_type";
	values[0] = "balance_change_from_activity.itemized.3";
	keys[1] = "parameters[interval_start]";
	values[1] = RowParam(req, "interval_start");
	keys[2] = "parameters[interval_end]";
	values[2] = RowParam(req, "interval_end");
	for (int i = 0; i < (int) N_COLUMNS; i++)
	{
		keys[3 + i] = psprintf("parameters[columns][%d]", i);
		values[3 + i] = (char *) report_columns[i];
	}
	return ProviderFormBody(EventBuild(keys, values, 3 + N_COLUMNS));
}

Datum
StripeStatementBuild(const ProviderRequest *req)
{
	char	   *base = ProviderBaseUrl(req, "https://api.stripe.com");
	size_t		len;
	char	   *key = ProviderCredential(req, "api_key", &len);
	char	   *auth = psprintf("Authorization: Bearer %s", key);

	SecretScrub(key, len);
	if (strcmp(req->operation, "fetch_statement") == 0)
		return ProviderHttpRequest("POST", psprintf("%s/v1/reporting/report_runs", base),
								   list_make3(auth,
											  psprintf("Idempotency-Key: %s",
													   ProviderRowText(req->outbox, "idempotency_key")),
											  "Content-Type: application/x-www-form-urlencoded"),
								   ReportRunForm(req));
	if (strcmp(req->operation, "fetch_statement_poll") == 0)
		return ProviderHttpRequest("GET", psprintf("%s/v1/reporting/report_runs/%s", base,
												   RowParam(req, "report_run")),
								   list_make1(auth), NULL);
	return ProviderHttpRequest("GET", RowParam(req, "url"), list_make1(auth), NULL);
}

/* Where Stripe serves report files, beside the gateway's own base_url. */
#define STRIPE_FILE_HOST "files.stripe.com"

/* Stripe prepares a report in seconds to minutes: ask again after this. */
#define STRIPE_POLL_DELAY_S 60

/* The report run (the answer to fetch_statement or fetch_statement_poll) as the next step. */
Jsonb *
StripeStatementRead(const ProviderAnswer *ans)
{
	Jsonb	   *v = ProviderStatementBody(ans->body);
	char	   *id = JsonbGetText(v, "id");
	char	   *status = JsonbGetText(v, "status");
	char	   *day = JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "day");

	if (status != NULL && strcmp(status, "succeeded") == 0)
	{
		static const char *const keys[] = {"day", "report_run", "url"};
		char	   *values[3] = {day, id, JsonbGetText(JsonbGetObject(v, "result"), "url")};

		if (!ProviderStatementUrlTrusted(&ans->request, values[2], false, STRIPE_FILE_HOST))
		{
			char	   *base = ProviderRowText(ans->request.gateway, "base_url");

			return ProviderStatementRefused(psprintf("the report's file URL %s is not on %s nor %s",
													 values[2] ? values[2] : "",
													 base ? base : "https://api.stripe.com", STRIPE_FILE_HOST));
		}
		return ProviderStatementNext("fetch_statement_file", EventBuild(keys, values, 3), id, 0);
	}
	if (status != NULL && strcmp(status, "pending") == 0)
	{
		static const char *const keys[] = {"day", "report_run"};
		char	   *values[2] = {day, id};

		return ProviderStatementNext("fetch_statement_poll", EventBuild(keys, values, 2),
									 id ? psprintf("%s:%lld", id, (long long) ProviderRowInt64(ans->request.outbox, "id")) : NULL,
									 STRIPE_POLL_DELAY_S);
	}
	return ProviderStatementRefused(psprintf("the report run %s is %s", id ? id : "",
											 status ? status : "(no status)"));
}
