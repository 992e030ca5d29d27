/* headers.c — a request's headers as one JSON object, names as received, values escaped */
#include "headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEADERS_MAX 512			/* MHD's connection memory limit keeps us far below */

typedef struct Header
{
	const char *name;
	size_t		name_len;
	const char *value;
	size_t		value_len;
} Header;

typedef struct HeaderList
{
	Header		items[HEADERS_MAX];
	int			count;
	bool		overflow;
} HeaderList;

/* MHD iterator: remember one header (pointers stay valid for the request) */
static enum MHD_Result
CollectHeader(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
			  const char *value, size_t value_size)
{
	HeaderList *list = cls;
	Header	   *h;

	(void) kind;
	if (list->count >= HEADERS_MAX)
	{
		list->overflow = true;
		return MHD_NO;
	}
	h = &list->items[list->count++];
	h->name = key;
	h->name_len = key_size;
	h->value = value ? value : "";
	h->value_len = value ? value_size : 0;
	return MHD_YES;
}

/* True if two header names are equal ignoring ASCII case */
static bool
SameName(const Header *a, const Header *b)
{
	return a->name_len == b->name_len && strncasecmp(a->name, b->name, a->name_len) == 0;
}

/* True if the header is a traceparent (any case) */
static bool
IsTraceParent(const Header *h)
{
	return h->name_len == 11 && strncasecmp(h->name, "traceparent", 11) == 0;
}

/* The headers as a JSON object; traceparent, when not NULL, replaces the request's own */
static bool
ToJson(struct MHD_Connection *connection, JsonBuf *out, const char *traceparent)
{
	HeaderList *list = calloc(1, sizeof(HeaderList));
	bool		first = true;
	bool		ok = true;

	if (list == NULL)
		return false;
	MHD_get_connection_values_n(connection, MHD_HEADER_KIND, CollectHeader, list);
	if (list->overflow)
	{
		free(list);
		return false;
	}

	JsonBufAppend(out, "{", 1);
	for (int i = 0; i < list->count && ok; i++)
	{
		Header	   *h = &list->items[i];
		bool		seen = false;
		bool		first_value = true;

		for (int j = 0; j < i && !seen; j++)
			seen = SameName(&list->items[j], h);
		if (seen || (traceparent != NULL && IsTraceParent(h)))
			continue;			/* already emitted with the first spelling, or replaced */

		if (!first)
			JsonBufAppend(out, ",", 1);
		first = false;
		ok = JsonBufAppendString(out, h->name, h->name_len);
		if (!ok)
			break;
		JsonBufAppend(out, ":\"", 2);
		for (int k = i; k < list->count && ok; k++)
		{
			Header	   *v = &list->items[k];

			if (!SameName(v, h))
				continue;
			if (!first_value)
				JsonBufAppend(out, ", ", 2);
			first_value = false;
			ok = JsonBufAppendEscaped(out, v->value, v->value_len);
		}
		JsonBufAppend(out, "\"", 1);
	}
	if (ok && traceparent != NULL)
	{
		if (!first)
			JsonBufAppend(out, ",", 1);
		JsonBufAppend(out, "\"traceparent\":\"", 15);
		ok = JsonBufAppendEscaped(out, traceparent, strlen(traceparent));
		JsonBufAppend(out, "\"", 1);
	}
	JsonBufAppend(out, "}", 1);
	free(list);
	return ok && !out->failed;
}

/* Append the request's headers to out as a JSON object (see headers.h) */
bool
HeadersToJson(struct MHD_Connection *connection, JsonBuf *out)
{
	return ToJson(connection, out, NULL);
}

/* The same, with the request's traceparent header replaced by traceparent */
bool
HeadersToJsonTraced(struct MHD_Connection *connection, JsonBuf *out, const char *traceparent)
{
	return ToJson(connection, out, traceparent);
}
