/*
 * stripe.c — Stripe webhook signatures (see stripe.h).
 */
#include "stripe.h"

#include <stdio.h>
#include <string.h>

#include "ct.h"
#include "hex.h"
#include "hmac.h"

/* Parses 1..STRIPE_TIMESTAMP_DIGITS_MAX decimal digits; 0 on success. */
static int
ParseTimestamp(const char *s, size_t len, int64_t *out)
{
	int64_t		v = 0;
	size_t		i;

	if (len == 0 || len > STRIPE_TIMESTAMP_DIGITS_MAX)
		return -1;
	for (i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

StripeParseResult
stripe_parse_header(const char *header, size_t len, StripeHeader *out)
{
	size_t		pos = 0;
	size_t		n_elements = 0;
	int			have_t = 0;

	out->timestamp = 0;
	out->n_v1 = 0;
	if (header == NULL)
		return STRIPE_PARSE_NO_TIMESTAMP;
	if (len > STRIPE_HEADER_MAX)
		return STRIPE_PARSE_TOO_LONG;

	while (pos <= len)
	{
		const char *elem = header + pos;
		const char *comma = len > pos ? memchr(elem, ',', len - pos) : NULL;
		size_t		elem_len = comma ? (size_t) (comma - elem) : len - pos;
		const char *eq = elem_len > 0 ? memchr(elem, '=', elem_len) : NULL;

		if (++n_elements > STRIPE_ELEMENTS_MAX)
			return STRIPE_PARSE_TOO_LONG;
		if (eq != NULL)
		{
			size_t		key_len = (size_t) (eq - elem);
			const char *value = eq + 1;
			size_t		value_len = elem_len - key_len - 1;

			if (key_len == 1 && elem[0] == 't')
			{
				if (have_t || ParseTimestamp(value, value_len, &out->timestamp) != 0)
					return STRIPE_PARSE_BAD_TIMESTAMP;
				have_t = 1;
			}
			else if (key_len == 2 && elem[0] == 'v' && elem[1] == '1' &&
					 value_len == 2 * HMAC_SHA256_LEN)
			{
				size_t		sig_len = 0;
				uint8_t		sig[HMAC_SHA256_LEN];

				if (hex_decode(value, value_len, sig, sizeof(sig), &sig_len) == 0 &&
					sig_len == HMAC_SHA256_LEN)
				{
					if (out->n_v1 == STRIPE_V1_MAX)
						return STRIPE_PARSE_TOO_LONG;
					memcpy(out->v1[out->n_v1++], sig, HMAC_SHA256_LEN);
				}
			}
		}
		if (comma == NULL)
			break;
		pos += elem_len + 1;
	}
	if (!have_t)
		return STRIPE_PARSE_NO_TIMESTAMP;
	if (out->n_v1 == 0)
		return STRIPE_PARSE_NO_V1;
	return STRIPE_PARSE_OK;
}

/* Writes timestamp (0..10^18-1) in decimal, no NUL; returns the digit count, 0 if out of range. */
static size_t
FormatTimestamp(int64_t timestamp, char buf[STRIPE_TIMESTAMP_DIGITS_MAX])
{
	char		rev[STRIPE_TIMESTAMP_DIGITS_MAX];
	size_t		n = 0;
	size_t		i;

	if (timestamp < 0)
		return 0;
	do
	{
		if (n == STRIPE_TIMESTAMP_DIGITS_MAX)
			return 0;
		rev[n++] = (char) ('0' + timestamp % 10);
		timestamp /= 10;
	} while (timestamp > 0);
	for (i = 0; i < n; i++)
		buf[i] = rev[n - 1 - i];
	return n;
}

/* HMAC-SHA256 of "<timestamp>.<payload>"; 0 on success. */
static int
StripeMac(const uint8_t *secret, size_t secret_len, const char *payload, size_t payload_len,
		  int64_t timestamp, uint8_t mac[HMAC_SHA256_LEN])
{
	char		t[STRIPE_TIMESTAMP_DIGITS_MAX];
	size_t		t_len = FormatTimestamp(timestamp, t);
	CryptoPart	parts[3];

	if (t_len == 0)
		return -1;
	parts[0].data = t;
	parts[0].len = t_len;
	parts[1].data = ".";
	parts[1].len = 1;
	parts[2].data = payload;
	parts[2].len = payload_len;
	return hmac_sha256_parts(secret, secret_len, parts, 3, mac);
}

int
stripe_sign(const uint8_t *secret, size_t secret_len,
			const char *payload, size_t payload_len,
			int64_t timestamp, char out[STRIPE_SIGNATURE_HEADER_LEN])
{
	uint8_t		mac[HMAC_SHA256_LEN];
	char		mac_hex[2 * HMAC_SHA256_LEN + 1];

	if (StripeMac(secret, secret_len, payload, payload_len, timestamp, mac) != 0)
		return -1;
	hex_encode(mac, HMAC_SHA256_LEN, mac_hex);
	snprintf(out, STRIPE_SIGNATURE_HEADER_LEN, "t=%lld,v1=%s", (long long) timestamp, mac_hex);
	return 0;
}

StripeVerdict
stripe_verify(const char *payload, size_t payload_len,
			  const char *header, size_t header_len,
			  const uint8_t *secret, size_t secret_len,
			  int64_t now, int64_t tolerance_s)
{
	StripeHeader h;
	uint8_t		mac[HMAC_SHA256_LEN];
	int			match = 0;
	size_t		i;
	int64_t		age;

	if (stripe_parse_header(header, header_len, &h) != STRIPE_PARSE_OK)
		return STRIPE_MALFORMED;
	if (StripeMac(secret, secret_len, payload, payload_len, h.timestamp, mac) != 0)
		return STRIPE_ERROR;
	/* Look at every v1, whichever matches, so timing says nothing about which. */
	for (i = 0; i < h.n_v1; i++)
		match |= ct_equal(mac, h.v1[i], HMAC_SHA256_LEN);
	if (!match)
		return STRIPE_NO_MATCH;
	if (tolerance_s < 0)
		return STRIPE_TIMESTAMP_OUTSIDE;	/* fail closed; callers reject it first */
	if (tolerance_s > 0)
	{
		/* t has at most 18 digits; now is a PostgreSQL time: no overflow. */
		if (now > INT64_MAX / 2 || now < INT64_MIN / 2)
			return STRIPE_TIMESTAMP_OUTSIDE;
		age = now - h.timestamp;
		if (age > tolerance_s || age < -tolerance_s)
			return STRIPE_TIMESTAMP_OUTSIDE;
	}
	return STRIPE_VALID;
}
