/*
 * errors.c — SQLSTATE to HTTP status mapping and JSON error bodies.
 *
 * The mapping: class 22 → 400, PY001 (illegal transition) → 409,
 * PY002 → 422, PY003 and PY005 (not enough money; a capture above its
 * authorization) → 422, 0A000 on a create (capture the gateway cannot
 * do) → 422, 23505 → 409,
 * PY029 → 429 with Retry-After, 42501 → 403, PY010/PY011/PY012 → 401,
 * 57014 (statement timeout, ours) → 504, anything else → 500.  4xx bodies
 * carry the error's SQLSTATE, the field it is about and its message; 5xx
 * bodies are fixed text.
 */
#include "errors.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access_log.h"
#include "json.h"

#define RETRY_AFTER_MAX_S 86400

typedef struct SqlStateMapping
{
	const char *sqlstate;		/* five characters, or a two-character class */
	unsigned	status;
	const char *code;			/* stable error code in the JSON body */
	int			show_message;	/* 4xx: the error's message is shown to the client */
	const char *route;			/* only for this route, or NULL: any */
} SqlStateMapping;

/* Exact codes first, then classes; the first match wins */
static const SqlStateMapping mappings[] = {
	{"PY001", 409, "illegal_transition", 1, NULL},
	{"PY002", 422, "idempotency_conflict", 1, NULL},
	{"PY003", 422, "insufficient_funds", 1, NULL},
	/* PY005 is "more than the money allows": for a capture, the authorization */
	{"PY005", 422, "capture_exceeds_authorized", 1, "capture_payment"},
	{"PY005", 422, "refund_exceeds_paid", 1, NULL},
	{"0A000", 422, "not_supported", 1, "create_payment"},
	{"23505", 409, "duplicate", 1, NULL},
	{"PY029", 429, "rate_limited", 1, NULL},
	{"42501", 403, "forbidden", 1, NULL},
	{"PY010", 401, "unauthorized", 1, NULL},
	{"PY011", 401, "unauthorized", 1, NULL},
	{"PY012", 401, "unauthorized", 1, NULL},
	{"57014", 504, "timeout", 0, NULL},
	{"22", 400, "invalid_request", 1, NULL},
};

/* Append a JSON string, or null for NULL */
static void
AppendStringOrNull(JsonBuf *buf, const char *s)
{
	if (s == NULL)
		JsonBufAppendStr(buf, "null");
	else
		JsonBufAppendStringLossy(buf, s, strlen(s));
}

/* Fill r with status and {"error":{"code","sqlstate","field","message"}} (see errors.h) */
void
ErrorResponseFull(ProxyResponse *r, unsigned status, const char *code, const char *sqlstate,
				  const char *field, const char *message)
{
	JsonBuf		buf;

	JsonBufInit(&buf);
	JsonBufAppendStr(&buf, "{\"error\":{\"code\":");
	JsonBufAppendStringLossy(&buf, code, strlen(code));
	JsonBufAppendStr(&buf, ",\"sqlstate\":");
	AppendStringOrNull(&buf, sqlstate);
	JsonBufAppendStr(&buf, ",\"field\":");
	AppendStringOrNull(&buf, field);
	JsonBufAppendStr(&buf, ",\"message\":");
	JsonBufAppendStringLossy(&buf, message, strlen(message));
	JsonBufAppendStr(&buf, "}}");

	ResponseFree(r);
	r->status = status;
	r->code = code;
	r->content_type = strdup("application/json");
	if (buf.failed || r->content_type == NULL)
	{
		static const char fallback[] =
			"{\"error\":{\"code\":\"internal\",\"sqlstate\":null,\"field\":null,\"message\":\"internal error\"}}";

		JsonBufFree(&buf);
		r->status = 500;
		r->code = "internal";
		r->body = strdup(fallback);
		r->body_len = r->body ? strlen(fallback) : 0;
		return;
	}
	r->body = buf.data;
	r->body_len = buf.len;
}

/* The same without SQLSTATE and field: the proxy's own refusals */
void
ErrorResponse(ProxyResponse *r, unsigned status, const char *code, const char *message)
{
	ErrorResponseFull(r, status, code, NULL, NULL, message);
}

/*
 * The field a refused argument's error is about: the error's column name
 * when SQL set one, else the identifier its message begins with when a
 * ':', " must " or " is " follows it ("amount must be ...", "order_id:
 * order 7 does not exist").  Written to field (at most size bytes); false
 * when there is none.
 */
static bool
FieldOf(const PGresult *res, const char *message, char *field, size_t size)
{
	const char *column = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
	size_t		n = 0;

	if (column != NULL && column[0] != '\0')
	{
		snprintf(field, size, "%s", column);
		return true;
	}
	while (message[n] != '\0' && (islower((unsigned char) message[n]) || message[n] == '_' ||
								  (n > 0 && isdigit((unsigned char) message[n]))))
		n++;
	if (n == 0 || n >= size)
		return false;
	if (message[n] != ':' && strncmp(message + n, " must ", 6) != 0 && strncmp(message + n, " is ", 4) != 0)
		return false;
	memcpy(field, message, n);
	field[n] = '\0';
	return true;
}

/* Seconds for Retry-After from an error's DETAIL: the integer it holds, else 1 */
long
RetryAfterFromDetail(const char *detail)
{
	char	   *end;
	long		v;

	if (detail == NULL)
		return 1;
	while (*detail == ' ')
		detail++;
	if (*detail < '0' || *detail > '9')
		return 1;
	errno = 0;
	v = strtol(detail, &end, 10);
	while (*end == ' ')
		end++;
	if (errno != 0 || *end != '\0')
		return 1;
	return v > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : v;
}

/* Fill r from a failed SQL call, mapped by SQLSTATE */
static void
MapResult(ProxyResponse *r, const PGresult *res, const char *route)
{
	const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const SqlStateMapping *m = NULL;

	if (sqlstate == NULL || strlen(sqlstate) != 5)
		sqlstate = "XX000";
	if (message == NULL)
		message = "";

	for (size_t i = 0; i < sizeof(mappings) / sizeof(mappings[0]) && m == NULL; i++)
		if (strncmp(sqlstate, mappings[i].sqlstate, strlen(mappings[i].sqlstate)) == 0 &&
			(mappings[i].route == NULL || (route != NULL && strcmp(route, mappings[i].route) == 0)))
			m = &mappings[i];

	if (m == NULL)
	{
		LogMessage("error", "route=%s sqlstate=%s message=\"%s\"", route, sqlstate, message);
		ErrorResponse(r, 500, "internal", "internal error");
		return;
	}
	if (!m->show_message)
	{
		LogMessage("warning", "route=%s sqlstate=%s message=\"%s\"", route, sqlstate, message);
		ErrorResponse(r, m->status, m->code, "the database did not answer in time");
		return;
	}
	{
		char		field[64];
		bool		argument = strncmp(sqlstate, "22", 2) == 0 || strcmp(sqlstate, "42501") == 0;

		ErrorResponseFull(r, m->status, m->code, sqlstate,
						  argument && FieldOf(res, message, field, sizeof(field)) ? field : NULL, message);
	}
	if (m->status == 429)
		r->retry_after_s = RetryAfterFromDetail(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
}

/* Fill r from a failed SQL call, mapped by SQLSTATE; internals go to the log, never to the client */
void
ErrorFromResult(ProxyResponse *r, const PGresult *res, const char *route)
{
	const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	MapResult(r, res, route);
	/* kept for the access log */
	snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate && strlen(sqlstate) == 5 ? sqlstate : "XX000");
}

/* Fill r for a call that never produced a result (pool busy, database down, timeout) */
void
ErrorFromPool(ProxyResponse *r, PoolStatus status)
{
	switch (status)
	{
		case POOL_BUSY:
			ErrorResponse(r, 503, "unavailable", "no database connection is free, retry later");
			r->retry_after_s = 1;
			break;
		case POOL_UNAVAILABLE:
			ErrorResponse(r, 503, "unavailable", "the database is unavailable, retry later");
			r->retry_after_s = 1;
			break;
		case POOL_TIMEOUT:
			ErrorResponse(r, 504, "timeout", "the database did not answer in time");
			break;
		case POOL_OK:
			ErrorResponse(r, 500, "internal", "internal error");
			break;
	}
}
