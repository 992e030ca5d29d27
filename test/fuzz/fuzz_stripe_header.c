/*
 * fuzz_stripe_header.c — libFuzzer harness for the Stripe-Signature parser
 * and verifier (src/crypto/stripe.c).
 *
 * The input is a header; libFuzzer hands it over in a buffer of exactly its
 * size, so ASan catches any read past it.  Properties:
 *  - a parsed header has 1..STRIPE_V1_MAX signatures and a timestamp of at
 *    most 18 digits, and each signature's hex appears in the input;
 *  - our own signature of the input as payload verifies, and fails after one
 *    payload byte is flipped;
 *  - a correct "t=..,v1=.." followed by the input as extra elements is
 *    either valid or malformed (a second t, too long, too many elements),
 *    never "no match".
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "stripe.h"

static const uint8_t secret[] = "whsec_fuzz_secret";

/* 1 if needle (hex, n chars) occurs in hay case-insensitively. */
static int
ContainsHex(const char *hay, size_t hay_len, const char *needle, size_t n)
{
	size_t		i,
				j;

	for (i = 0; i + n <= hay_len; i++)
	{
		for (j = 0; j < n; j++)
			if (tolower((unsigned char) hay[i + j]) != needle[j])
				break;
		if (j == n)
			return 1;
	}
	return 0;
}

/* One input: parse it as a header, sign it as a payload, append it to a header. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *input = (const char *) data;
	StripeHeader h;
	StripeParseResult pr = stripe_parse_header(input, size, &h);
	char		header[STRIPE_SIGNATURE_HEADER_LEN];
	int64_t		t = 1714564800;
	StripeVerdict v;

	if (pr == STRIPE_PARSE_OK)
	{
		size_t		i;

		assert(h.n_v1 >= 1 && h.n_v1 <= STRIPE_V1_MAX);
		assert(h.timestamp >= 0 && h.timestamp < 1000000000000000000LL);
		assert(size <= STRIPE_HEADER_MAX);
		for (i = 0; i < h.n_v1; i++)
		{
			char		hex[65];

			hex_encode(h.v1[i], 32, hex);
			assert(ContainsHex(input, size, hex, 64));
		}
	}
	else
		assert(size > STRIPE_HEADER_MAX || pr != STRIPE_PARSE_TOO_LONG ||
			   memchr(input, ',', size) != NULL);

	/* The input as a payload: sign, verify, tamper. */
	if (size > 0)
		t = (int64_t) data[0] * 1000003;
	assert(stripe_sign(secret, sizeof(secret) - 1, input, size, t, header) == 0);
	v = stripe_verify(input, size, header, strlen(header), secret, sizeof(secret) - 1, t + 299, 300);
	assert(v == STRIPE_VALID);
	v = stripe_verify(input, size, header, strlen(header), secret, sizeof(secret) - 1, t + 301, 300);
	assert(v == STRIPE_TIMESTAMP_OUTSIDE);
	v = stripe_verify(input, size, header, strlen(header), secret, sizeof(secret) - 2, t, 0);
	assert(v == STRIPE_NO_MATCH);
	if (size > 0)
	{
		char	   *copy = malloc(size);

		memcpy(copy, input, size);
		copy[size / 2] ^= 0x01;
		v = stripe_verify(copy, size, header, strlen(header), secret, sizeof(secret) - 1, t, 0);
		assert(v == STRIPE_NO_MATCH);
		free(copy);
	}

	/* A correct header with the input appended as more elements. */
	{
		size_t		hl = strlen(header);
		char	   *combined = malloc(hl + 1 + size);

		assert(stripe_sign(secret, sizeof(secret) - 1, "p", 1, t, header) == 0);
		memcpy(combined, header, hl);
		combined[hl] = ',';
		memcpy(combined + hl + 1, input, size);
		v = stripe_verify("p", 1, combined, hl + 1 + size, secret, sizeof(secret) - 1, t, 0);
		assert(v == STRIPE_VALID || v == STRIPE_MALFORMED);
		free(combined);
	}
	return 0;
}
