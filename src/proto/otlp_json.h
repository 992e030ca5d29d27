/*
 * otlp_json.h — spans as an OTLP/HTTP JSON ExportTraceServiceRequest
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
 * Plain C, shared by pay-proxy and the dispatcher.
 */
#ifndef PAY_PROTO_OTLP_JSON_H
#define PAY_PROTO_OTLP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTLP_SPAN_KIND_SERVER 2
#define OTLP_SPAN_KIND_CLIENT 3

#define OTLP_STATUS_OK 1
#define OTLP_STATUS_ERROR 2

/*
 * One finished span.  Fixed size, so that a bounded queue of them needs no
 * allocation per span.  Empty strings are left out of the JSON; callers put
 * no query string, secret or signature in any field.
 */
typedef struct OtlpSpan
{
	char		trace_id[33];	/* 32 lower-case hex digits */
	char		span_id[17];	/* 16 lower-case hex digits */
	char		parent_span_id[17]; /* "" for a root span */
	char		name[64];
	int			kind;			/* OTLP_SPAN_KIND_* */
	uint64_t	start_unix_nano;
	uint64_t	end_unix_nano;
	char		method[16];		/* http.request.method */
	char		url_path[256];	/* url.path (server spans), never the query */
	char		server_address[256];	/* server.address (client spans): a host name */
	int			http_status;	/* http.response.status_code; 0: none (no response) */
	int			status_code;	/* OTLP_STATUS_* */
} OtlpSpan;

/* Copy src into dst[size], truncated, always NUL-terminated */
void		OtlpCopy(char *dst, size_t size, const char *src);

/*
 * The request body for spans[0..n-1] of service service_name, as a malloc'd
 * NUL-terminated string (length in *len), or NULL when out of memory.
 */
char	   *OtlpEncodeSpans(const char *service_name, const OtlpSpan *spans, int n, size_t *len);

#endif
