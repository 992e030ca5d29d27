/*
 * http_checks.c — RFC 9112 message checks that libmicrohttpd 0.9.75 does not
 * make itself.
 *
 * MHD 0.9.75 (at its default strictness) reads a body by the first of several
 * Content-Length headers, lets Transfer-Encoding win over Content-Length
 * without complaint, treats a Transfer-Encoding other than "chunked" as no
 * transfer coding at all, and accepts HTTP/1.1 without Host.  A front proxy
 * that frames the same bytes differently would let a client smuggle a second
 * request past it, so such requests are refused before their body is read,
 * and the connection is closed after the answer (RFC 9112 §6.3: the rest of
 * the stream cannot be trusted).  MHD itself already refuses a Content-Length
 * that is not a plain decimal number, with its own 400 page.
 */
#include "http_checks.h"

#include <string.h>
#include <strings.h>

#include "errors.h"

typedef struct HeaderCounts
{
	int			content_length;
	int			transfer_encoding;
	int			host;
	const char *transfer_coding;	/* value of the (first) Transfer-Encoding */
} HeaderCounts;

/* MHD iterator: count the headers that decide framing, names compared case-insensitively */
static enum MHD_Result
CountHeader(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
			const char *value, size_t value_size)
{
	HeaderCounts *c = cls;

	(void) kind;
	(void) key_size;
	(void) value_size;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		c->content_length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		c->host++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
	{
		if (c->transfer_encoding++ == 0)
			c->transfer_coding = value ? value : "";
	}
	return MHD_YES;
}

/* True if the last coding of a Transfer-Encoding list is "chunked" */
static bool
EndsWithChunked(const char *codings)
{
	const char *last = strrchr(codings, ',');
	size_t		len;

	last = last ? last + 1 : codings;
	while (*last == ' ' || *last == '\t')
		last++;
	len = strlen(last);
	while (len > 0 && (last[len - 1] == ' ' || last[len - 1] == '\t'))
		len--;
	return len == 7 && strncasecmp(last, "chunked", 7) == 0;
}

/* Fill r with a refusal that also closes the connection */
static bool
Refuse(ProxyResponse *r, unsigned status, const char *code, const char *message)
{
	ErrorResponse(r, status, code, message);
	r->close = true;
	return false;
}

/* See http_checks.h */
bool
HttpChecksPass(struct MHD_Connection *connection, const char *version, ProxyResponse *r)
{
	HeaderCounts c;
	bool		http10 = strcmp(version, MHD_HTTP_VERSION_1_0) == 0;

	memset(&c, 0, sizeof(c));
	MHD_get_connection_values_n(connection, MHD_HEADER_KIND, CountHeader, &c);

	/* §6.3: several Content-Length values are a framing error; equal ones are refused too (one is enough) */
	if (c.content_length > 1)
		return Refuse(r, 400, "invalid_request", "more than one Content-Length header");
	/* §6.3: both framings at once is how requests are smuggled past another parser */
	if (c.content_length > 0 && c.transfer_encoding > 0)
		return Refuse(r, 400, "invalid_request", "both Content-Length and Transfer-Encoding");
	if (c.transfer_encoding > 0)
	{
		/* §6.1: HTTP/1.0 has no transfer codings, so its framing is faulty */
		if (http10)
			return Refuse(r, 400, "invalid_request", "Transfer-Encoding in an HTTP/1.0 request");
		/* several lines form one list, but MHD reads only the first: refuse rather than misframe */
		if (c.transfer_encoding > 1)
			return Refuse(r, 400, "invalid_request", "more than one Transfer-Encoding header");
		/* §6.3: chunked not last means the body length cannot be known */
		if (!EndsWithChunked(c.transfer_coding))
			return Refuse(r, 400, "invalid_request", "Transfer-Encoding does not end with chunked");
		/* §6.1: a coding we do not understand (only plain "chunked" is decoded) */
		if (strcasecmp(c.transfer_coding, "chunked") != 0)
			return Refuse(r, 501, "not_implemented", "only the chunked transfer coding is supported");
	}
	/* §3.2: HTTP/1.1 requires exactly one Host; no version may send two */
	if (c.host > 1)
		return Refuse(r, 400, "invalid_request", "more than one Host header");
	if (c.host == 0 && !http10)
		return Refuse(r, 400, "invalid_request", "HTTP/1.1 request without a Host header");
	return true;
}
