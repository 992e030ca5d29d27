/*
 * provider_statement.c — what the providers' statement fetch readers
 * share (provider.h, "Statement fetches"): the step summary that
 * 89_statement_fetch.sql applies, the answer's body, and the rule for the
 * URLs a file may be fetched from.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"

Jsonb *
ProviderStatementNext(const char *operation, Jsonb *params, const char *key, int delay_s)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "verdict", "applied");
	ProviderPushObject(&state, "next");
	ProviderPushText(&state, "operation", operation);
	ProviderPushJsonb(&state, "params", params != NULL ? params : EventBuild(NULL, NULL, 0));
	ProviderPushText(&state, "key", key);
	ProviderPushInt64(&state, "delay_s", delay_s);
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

Jsonb *
ProviderStatementRefused(const char *reason)
{
	static const char *const keys[] = {"verdict", "reason"};
	char	   *values[2] = {"refused", (char *) reason};

	return EventBuild(keys, values, 2);
}

/* Any JSON value, as the answer's ->> and -> read it (not only an object). */
Jsonb *
ProviderStatementBody(text *body)
{
	if (body == NULL)
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text_to_cstring(body))));
}

/* Does url start with prefix followed by a slash?  (len: prefix's length) */
static bool
UnderPrefix(const char *url, const char *prefix, size_t len)
{
	return strncmp(url, prefix, len) == 0 && url[len] == '/';
}

/* The length of base's origin, scheme://host[:port]; 0 when it is not http(s). */
static size_t
OriginLength(const char *base)
{
	size_t		scheme;

	if (strncmp(base, "https://", strlen("https://")) == 0)
		scheme = strlen("https://");
	else if (strncmp(base, "http://", strlen("http://")) == 0)
		scheme = strlen("http://");
	else
		return 0;
	if (base[scheme] == '\0' || base[scheme] == '/')
		return 0;
	return scheme + strcspn(base + scheme, "/");
}

/*
 * Whitespace is refused (as well as \ and @) because clients differ on
 * where a URL holding it ends; the userinfo @ would make a lookalike
 * "https://psp.example@evil.example/" pass the prefix test.
 */
bool
ProviderStatementUrlTrusted(const ProviderRequest *req, const char *url, bool whole_origin, const char *file_host)
{
	char	   *base = ProviderRowText(req->gateway, "base_url");

	if (url == NULL || strpbrk(url, " \t\n\v\f\r\\@") != NULL)
		return false;
	if (base != NULL)
	{
		size_t		len = strlen(base);

		while (len > 0 && base[len - 1] == '/')
			len--;
		if (UnderPrefix(url, base, len))
			return true;
		if (whole_origin && OriginLength(base) > 0 && UnderPrefix(url, base, OriginLength(base)))
			return true;
	}
	return file_host != NULL && strncmp(url, "https://", strlen("https://")) == 0 &&
		UnderPrefix(url + strlen("https://"), file_host, strlen(file_host));
}
