/*
 * attempt_log.c — the dispatcher's attempt log: one JSON object per line for
 * every delivery attempt whose outcome is stored, appended to the file the
 * setting pay.attempt_log names (off when empty; PostgreSQL's own log is
 * left as it is).  Fields: time, trace_id, outbox_id, attempt, kind,
 * destination, operation, http_status, outcome, duration_ms, sqlstate, error.  Never
 * the request or answer: no credential, signature or account data.
 *
 * The trace id of each attempt comes from delivery_context.c.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "attempt_log.h"
#include "dispatcher.h"

static char *attempt_log_path = NULL;

void
AttemptLogInit(void)
{
	DefineCustomStringVariable("pay.attempt_log",
							   "File the dispatcher appends one JSON line per delivery attempt to (empty: none).",
							   "Relative paths are in the data directory.",
							   &attempt_log_path, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
}

static bool
Enabled(void)
{
	return attempt_log_path != NULL && attempt_log_path[0] != '\0';
}

/* ,"key":"value" or ,"key":null */
static void
Field(StringInfo s, const char *key, const char *value)
{
	appendStringInfo(s, ",\"%s\":", key);
	if (value == NULL)
		appendStringInfoString(s, "null");
	else
		escape_json(s, value);
}

/* The SQLSTATE of a request that could not be built ("building the request failed: XXXXX: ..."). */
static const char *
SqlState(const char *error, char *out)
{
	const char *p = strstr(error, "failed: ");

	if (p == NULL || strlen(p) < 8 + 6 || p[8 + 5] != ':')
		return NULL;
	memcpy(out, p + 8, 5);
	out[5] = '\0';
	return out;
}

/* Log the attempts whose outcomes were stored (outcomes[i] is OUTCOME_*; contexts[i] from delivery_context.c). */
void
AttemptLogWrite(const HttpResult *results, const int *outcomes, const DeliveryContext *contexts, int n)
{
	static const char *const outcome_names[] = {"done", "retry", "dead"};
	StringInfoData s;
	int			fd;
	int			i;

	if (!Enabled())
		return;
	initStringInfo(&s);
	for (i = 0; i < n; i++)
	{
		const HttpResult *r = &results[i];
		const char *trace = contexts[i].trace_id;
		char		state[6];

		appendStringInfo(&s, "{\"time\":");
		escape_json(&s, timestamptz_to_str(GetCurrentTimestamp()));
		Field(&s, "trace_id", trace[0] ? trace : NULL);
		appendStringInfo(&s, ",\"outbox_id\":" INT64_FORMAT ",\"attempt\":%d", r->outbox_id, r->attempt);
		Field(&s, "kind", r->notification ? "merchant_notification" : "psp_request");
		Field(&s, "destination", r->destination);
		Field(&s, "operation", contexts[i].operation);
		if (r->http_status > 0)
			appendStringInfo(&s, ",\"http_status\":%d", r->http_status);
		else
			appendStringInfoString(&s, ",\"http_status\":null");
		Field(&s, "outcome", outcomes[i] >= 0 && outcomes[i] <= 2 ? outcome_names[outcomes[i]] : "unknown");
		appendStringInfo(&s, ",\"duration_ms\":%.3f", r->build_error ? 0.0 : r->latency_ms);
		Field(&s, "sqlstate", r->build_error ? SqlState(r->error, state) : NULL);
		Field(&s, "error", r->error[0] ? r->error : NULL);
		appendStringInfoString(&s, "}\n");
	}
	/* one write of whole lines, appended: lines never interleave with another writer's */
	fd = open(attempt_log_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (fd < 0 || write(fd, s.data, s.len) != s.len)
		ereport(LOG, (errmsg("pay dispatcher: could not write the attempt log \"%s\": %m", attempt_log_path)));
	if (fd >= 0)
		close(fd);
	pfree(s.data);
}
