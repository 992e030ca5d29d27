/*
 * stripe.h — Stripe webhook signatures: the Stripe-Signature header
 * "t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]" and HMAC-SHA256 over
 * "<t>.<payload>" with the endpoint secret (the whole "whsec_..." string is
 * the key).  Plain C.
 */
#ifndef PAY_STRIPE_H
#define PAY_STRIPE_H

#include <stddef.h>
#include <stdint.h>

/* Longest header we parse; Stripe's are about 150 bytes per signature. */
#define STRIPE_HEADER_MAX 4096
/* Most comma-separated elements in a header. */
#define STRIPE_ELEMENTS_MAX 32
/* Most v1 signatures kept (Stripe sends several while a secret is rolled). */
#define STRIPE_V1_MAX 8
/* A header we write: "t=" 19 digits ",v1=" 64 hex digits and a NUL. */
#define STRIPE_SIGNATURE_HEADER_LEN 96
/* Largest timestamp accepted: 18 digits, so arithmetic cannot overflow. */
#define STRIPE_TIMESTAMP_DIGITS_MAX 18

typedef enum StripeParseResult
{
	STRIPE_PARSE_OK = 0,
	STRIPE_PARSE_TOO_LONG,		/* over STRIPE_HEADER_MAX bytes or STRIPE_ELEMENTS_MAX elements */
	STRIPE_PARSE_NO_TIMESTAMP,	/* no t= element */
	STRIPE_PARSE_BAD_TIMESTAMP, /* t= is not 1..18 decimal digits, or t= appears twice */
	STRIPE_PARSE_NO_V1			/* no well-formed v1= element (64 hex digits) */
} StripeParseResult;

/* A parsed header: the timestamp and the decoded v1 signatures. */
typedef struct StripeHeader
{
	int64_t		timestamp;
	size_t		n_v1;
	uint8_t		v1[STRIPE_V1_MAX][32];
} StripeHeader;

typedef enum StripeVerdict
{
	STRIPE_VALID = 0,
	STRIPE_MALFORMED,			/* the header does not parse */
	STRIPE_NO_MATCH,			/* no v1 signature matches */
	STRIPE_TIMESTAMP_OUTSIDE,	/* a v1 matches but |now - t| > tolerance */
	STRIPE_ERROR				/* OpenSSL failed */
} StripeVerdict;

/*
 * Parses a Stripe-Signature header of len bytes (not NUL-terminated).
 * Elements are "key=value" split on ","; elements with other keys (v0, a
 * future scheme) or without "=" are ignored; v1 values that are not 64 hex
 * digits are ignored; more than STRIPE_V1_MAX well-formed v1 are
 * STRIPE_PARSE_TOO_LONG.  Never reads header[len] or beyond.
 */
extern StripeParseResult stripe_parse_header(const char *header, size_t len, StripeHeader *out);

/*
 * Writes "t=<timestamp>,v1=<hex>" and a NUL into out; 0 on success, -1 when
 * timestamp is negative or has more than 18 digits, or OpenSSL fails.
 */
extern int	stripe_sign(const uint8_t *secret, size_t secret_len,
						const char *payload, size_t payload_len,
						int64_t timestamp, char out[STRIPE_SIGNATURE_HEADER_LEN]);

/*
 * Checks a header against the payload and secret at time now (unix seconds):
 * valid when any v1 matches (compared in constant time) and
 * |now - t| <= tolerance_s; tolerance_s 0 disables the time check
 * (a negative one always fails it).
 */
extern StripeVerdict stripe_verify(const char *payload, size_t payload_len,
								   const char *header, size_t header_len,
								   const uint8_t *secret, size_t secret_len,
								   int64_t now, int64_t tolerance_s);

#endif
