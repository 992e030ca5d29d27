/*
 * alipay_response.h — finds, in a synchronous Alipay gateway answer such as
 * {"alipay_trade_query_response":{...},"sign":"..."}, the raw text of the
 * *_response member (which the signature covers byte for byte, spacing and
 * escapes included) and the "sign" string.  Plain C.
 *
 * The body must be one well-formed JSON object (RFC 8259 syntax; nesting up
 * to ALIPAY_JSON_DEPTH_MAX).  Member names are compared as raw bytes.
 */
#ifndef PAY_ALIPAY_RESPONSE_H
#define PAY_ALIPAY_RESPONSE_H

#include <stddef.h>

#define ALIPAY_JSON_DEPTH_MAX 64

typedef enum AlipayResponseResult
{
	ALIPAY_RESPONSE_OK = 0,
	ALIPAY_RESPONSE_MALFORMED,	/* not one JSON object, or "sign" is not a string */
	ALIPAY_RESPONSE_NO_CONTENT,	/* no top-level member named *_response */
	ALIPAY_RESPONSE_NO_SIGN,	/* no top-level "sign" member */
	ALIPAY_RESPONSE_AMBIGUOUS	/* two *_response members or two "sign" members */
} AlipayResponseResult;

typedef struct AlipayResponse
{
	size_t		content_off;	/* raw value of the *_response member */
	size_t		content_len;
	size_t		sign_off;		/* raw text between the quotes of "sign" */
	size_t		sign_len;
} AlipayResponse;

/* Scan body; on ALIPAY_RESPONSE_OK the spans in *out lie within body. */
extern AlipayResponseResult alipay_response_scan(const char *body, size_t len, AlipayResponse *out);

/*
 * Undo the JSON escapes of a raw string body (without its quotes) into out,
 * UTF-8; at most len bytes are written.  -1 on a bad escape or a lone surrogate.
 */
extern int	alipay_json_unescape(const char *raw, size_t len, char *out, size_t *out_len);

#endif							/* PAY_ALIPAY_RESPONSE_H */
