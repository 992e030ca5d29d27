/*
 * wechatpay_auth.h — the WeChat Pay API v3 Authorization header:
 *   WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no=".."
 * Plain C: parsing (for tests, proxies and callbacks), formatting, and the
 * checks that keep caller-supplied fields from breaking the header or the
 * signed message.
 *
 * Field values are 1..WECHATPAY_AUTH_VALUE_MAX bytes of printable ASCII
 * without '"', '\\' or space (WeChat's ids, nonces, serial numbers and base64
 * signatures all are); timestamp is 1..19 decimal digits.  The parser takes
 * the scheme and parameter names case-insensitively (RFC 9110 section 11),
 * optional spaces around "=" and ",", quoted or bare values; it ignores
 * unknown parameters and refuses a header with a missing, empty or repeated
 * field, an escape inside quotes, or more than WECHATPAY_AUTH_HEADER_MAX bytes.
 */
#ifndef PAY_WECHATPAY_AUTH_H
#define PAY_WECHATPAY_AUTH_H

#include <stddef.h>

#define WECHATPAY_AUTH_SCHEME		"WECHATPAY2-SHA256-RSA2048"
#define WECHATPAY_AUTH_HEADER_MAX	8192
#define WECHATPAY_AUTH_VALUE_MAX	2048

typedef enum WechatpayAuthField
{
	WECHATPAY_MCHID = 0,
	WECHATPAY_NONCE_STR,
	WECHATPAY_SIGNATURE,
	WECHATPAY_TIMESTAMP,
	WECHATPAY_SERIAL_NO,
	WECHATPAY_NFIELDS
} WechatpayAuthField;

/* Parameter names in header order: mchid, nonce_str, signature, timestamp, serial_no. */
extern const char *const wechatpay_auth_names[WECHATPAY_NFIELDS];

typedef struct WechatpayAuth
{
	const char *value[WECHATPAY_NFIELDS];	/* into the parsed header; not NUL-terminated */
	size_t		len[WECHATPAY_NFIELDS];
} WechatpayAuth;

/* Parse a header value; 0 on success, -1 if malformed. */
extern int	wechatpay_auth_parse(const char *header, size_t len, WechatpayAuth *out);

/* 1 if value may be field f of a header. */
extern int	wechatpay_auth_value_ok(WechatpayAuthField f, const char *value, size_t len);

/*
 * Length of the formatted header (without NUL), or 0 if a field is not
 * acceptable; writes it and a NUL to out when out_cap is large enough.
 */
extern size_t wechatpay_auth_format(const WechatpayAuth *auth, char *out, size_t out_cap);

/* 1 if method is an upper-case HTTP method token (1..32 letters A-Z). */
extern int	wechatpay_method_ok(const char *method, size_t len);

/* 1 if url is a path (and query) to sign: starts with '/', no spaces or control bytes. */
extern int	wechatpay_url_ok(const char *url, size_t len);

#endif							/* PAY_WECHATPAY_AUTH_H */
