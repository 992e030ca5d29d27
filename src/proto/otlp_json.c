/*
 * otlp_json.c — spans as an OTLP/HTTP JSON ExportTraceServiceRequest.
 *
 * The OTLP JSON mapping differs from plain proto3 JSON in two ways that
 * matter here: trace and span ids are hex strings (not base64), and 64-bit
 * integers (the times) are decimal strings.  Enums are written as integers,
 * which every OTLP receiver accepts.
 */
#include "otlp_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;			/* out of memory: everything after is ignored */
} Buf;

static void
Append(Buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 1024;
		char	   *p;

		while (b->len + n + 1 > cap)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL)
		{
			b->failed = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
AppendStr(Buf *b, const char *s)
{
	Append(b, s, strlen(s));
}

/*
 * A JSON string.  Bytes outside ASCII become U+FFFD: the fields are
 * method, path and host names, whose bytes need not be valid UTF-8, and a
 * collector must never be handed invalid JSON.
 */
static void
AppendQuoted(Buf *b, const char *s)
{
	Append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		char		esc[8];

		if (*p == '"' || *p == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) *p;
			Append(b, esc, 2);
		}
		else if (*p < 0x20 || *p == 0x7f)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			Append(b, esc, 6);
		}
		else if (*p >= 0x80)
			Append(b, "\\ufffd", 6);
		else
			Append(b, (const char *) p, 1);
	}
	Append(b, "\"", 1);
}

static void
AppendKeyString(Buf *b, const char *key, const char *value)
{
	AppendQuoted(b, key);
	Append(b, ":", 1);
	AppendQuoted(b, value);
}

/* An attribute {"key":k,"value":{"stringValue":v}}, preceded by a comma unless first */
static void
AttrString(Buf *b, bool *first, const char *key, const char *value)
{
	if (value[0] == '\0')
		return;
	if (!*first)
		Append(b, ",", 1);
	*first = false;
	Append(b, "{", 1);
	AppendKeyString(b, "key", key);
	AppendStr(b, ",\"value\":{");
	AppendKeyString(b, "stringValue", value);
	AppendStr(b, "}}");
}

/* The same with an intValue (a decimal string, as for every 64-bit integer) */
static void
AttrInt(Buf *b, bool *first, const char *key, long value)
{
	char		num[32];

	if (!*first)
		Append(b, ",", 1);
	*first = false;
	Append(b, "{", 1);
	AppendKeyString(b, "key", key);
	snprintf(num, sizeof(num), "%ld", value);
	AppendStr(b, ",\"value\":{");
	AppendKeyString(b, "intValue", num);
	AppendStr(b, "}}");
}

static void
AppendSpan(Buf *b, const OtlpSpan *s)
{
	char		num[64];
	bool		first = true;

	Append(b, "{", 1);
	AppendKeyString(b, "traceId", s->trace_id);
	Append(b, ",", 1);
	AppendKeyString(b, "spanId", s->span_id);
	if (s->parent_span_id[0] != '\0')
	{
		Append(b, ",", 1);
		AppendKeyString(b, "parentSpanId", s->parent_span_id);
	}
	Append(b, ",", 1);
	AppendKeyString(b, "name", s->name);
	snprintf(num, sizeof(num), ",\"kind\":%d", s->kind);
	AppendStr(b, num);
	snprintf(num, sizeof(num), ",\"startTimeUnixNano\":\"%" PRIu64 "\"", s->start_unix_nano);
	AppendStr(b, num);
	snprintf(num, sizeof(num), ",\"endTimeUnixNano\":\"%" PRIu64 "\"", s->end_unix_nano);
	AppendStr(b, num);
	AppendStr(b, ",\"attributes\":[");
	AttrString(b, &first, "http.request.method", s->method);
	AttrString(b, &first, "url.path", s->url_path);
	AttrString(b, &first, "server.address", s->server_address);
	if (s->http_status > 0)
		AttrInt(b, &first, "http.response.status_code", s->http_status);
	snprintf(num, sizeof(num), "],\"status\":{\"code\":%d}}", s->status_code);
	AppendStr(b, num);
}

void
OtlpCopy(char *dst, size_t size, const char *src)
{
	size_t		n = src ? strlen(src) : 0;

	if (n >= size)
		n = size - 1;
	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

char *
OtlpEncodeSpans(const char *service_name, const OtlpSpan *spans, int n, size_t *len)
{
	Buf			b = {0};

	AppendStr(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	{
		bool		first = true;

		AttrString(&b, &first, "service.name", service_name);
	}
	AppendStr(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"pay\"},\"spans\":[");
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			Append(&b, ",", 1);
		AppendSpan(&b, &spans[i]);
	}
	AppendStr(&b, "]}]}]}");
	if (b.failed)
	{
		free(b.data);
		return NULL;
	}
	*len = b.len;
	return b.data;
}
