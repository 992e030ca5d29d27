/*
 * fuzz_canonical.c — libFuzzer harness for the canonical parameter string
 * builder (src/crypto/canonical.c).
 *
 * Input: byte 0 gives the number of exclude keys (0..3); the rest is split
 * on NUL bytes into the exclude keys, then alternating key and value.
 * Properties:
 *  - the sizing call and the writing call agree, the output is NUL-
 *    terminated at that length, and a buffer one byte short is not touched;
 *  - the output equals a naive reference built here (insertion sort);
 *  - when no key or value contains '&' or '=', splitting the output gives
 *    keys in non-decreasing byte order, none excluded, none with an empty
 *    value.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canonical.h"

#define MAX_TOKENS 512

typedef struct Token
{
	const char *p;
	size_t		len;
} Token;

/* memcmp order, a prefix first. */
static int
Cmp(const char *a, size_t al, const char *b, size_t bl)
{
	size_t		n = al < bl ? al : bl;
	int			c = n ? memcmp(a, b, n) : 0;

	return c != 0 ? c : (al > bl) - (al < bl);
}

/* One input: build the canonical string and check it against the reference. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Token		tok[MAX_TOKENS];
	size_t		n_tok = 0;
	size_t		pos = 1;
	size_t		n_ex,
				n_pairs,
				i,
				j;
	const char *ex[3];
	size_t		ex_len[3];
	CanonicalPair pairs[MAX_TOKENS / 2];
	CanonicalPair ref[MAX_TOKENS / 2];
	size_t		n_ref = 0;
	size_t		total,
				total2,
				ref_len = 0;
	char	   *out,
			   *refout;
	int			plain = 1;

	if (size == 0)
		return 0;
	/* Tokens point into data, which ASan guards exactly. */
	while (pos <= size && n_tok < MAX_TOKENS)
	{
		const char *start = (const char *) data + pos;
		const void *nul = pos < size ? memchr(start, '\0', size - pos) : NULL;
		size_t		len = nul ? (size_t) ((const char *) nul - start) : size - pos;

		tok[n_tok].p = start;
		tok[n_tok].len = len;
		n_tok++;
		pos += len + 1;
	}
	n_ex = data[0] % 4;
	if (n_ex > n_tok)
		n_ex = n_tok;
	for (i = 0; i < n_ex; i++)
	{
		ex[i] = tok[i].p;
		ex_len[i] = tok[i].len;
	}
	n_pairs = (n_tok - n_ex) / 2;
	for (i = 0; i < n_pairs; i++)
	{
		pairs[i].key = tok[n_ex + 2 * i].p;
		pairs[i].key_len = tok[n_ex + 2 * i].len;
		pairs[i].value = tok[n_ex + 2 * i + 1].p;
		pairs[i].value_len = tok[n_ex + 2 * i + 1].len;
		if (memchr(pairs[i].key, '&', pairs[i].key_len) || memchr(pairs[i].key, '=', pairs[i].key_len) ||
			memchr(pairs[i].value, '&', pairs[i].value_len) || memchr(pairs[i].value, '=', pairs[i].value_len))
			plain = 0;
	}

	/* Reference: keep the included pairs, insertion-sort them, join. */
	for (i = 0; i < n_pairs; i++)
	{
		int			excluded = 0;

		for (j = 0; j < n_ex; j++)
			if (Cmp(pairs[i].key, pairs[i].key_len, ex[j], ex_len[j]) == 0)
				excluded = 1;
		if (excluded || pairs[i].value_len == 0)
			continue;
		for (j = n_ref; j > 0; j--)
		{
			int			c = Cmp(ref[j - 1].key, ref[j - 1].key_len, pairs[i].key, pairs[i].key_len);

			if (c == 0)
				c = Cmp(ref[j - 1].value, ref[j - 1].value_len, pairs[i].value, pairs[i].value_len);
			if (c <= 0)
				break;
			ref[j] = ref[j - 1];
		}
		ref[j] = pairs[i];
		n_ref++;
		ref_len += (n_ref > 1 ? 1 : 0) + pairs[i].key_len + 1 + pairs[i].value_len;
	}
	refout = malloc(ref_len + 1);
	for (i = 0, j = 0; i < n_ref; i++)
	{
		if (i > 0)
			refout[j++] = '&';
		memcpy(refout + j, ref[i].key, ref[i].key_len);
		j += ref[i].key_len;
		refout[j++] = '=';
		memcpy(refout + j, ref[i].value, ref[i].value_len);
		j += ref[i].value_len;
	}
	assert(j == ref_len);

	/* Under test: size, a buffer one short (untouched), then the real one. */
	total = canonical_build(pairs, n_pairs, ex, ex_len, n_ex, NULL, 0);
	assert(total == ref_len);
	out = malloc(total + 1);
	memset(out, 0x5a, total + 1);
	total2 = canonical_build(pairs, n_pairs, ex, ex_len, n_ex, out, total);
	assert(total2 == total);
	for (i = 0; i < total + 1; i++)
		assert((unsigned char) out[i] == 0x5a);
	total2 = canonical_build(pairs, n_pairs, ex, ex_len, n_ex, out, total + 1);
	assert(total2 == total);
	assert(out[total] == '\0');
	assert(memcmp(out, refout, total) == 0);

	/* Parse back when unambiguous. */
	if (plain)
	{
		const char *prev = NULL;
		size_t		prev_len = 0;
		size_t		p = 0;

		while (p < total)
		{
			const char *seg = out + p;
			const char *amp = memchr(seg, '&', total - p);
			size_t		seg_len = amp ? (size_t) (amp - seg) : total - p;
			const char *eq = memchr(seg, '=', seg_len);
			size_t		key_len;

			assert(eq != NULL);
			key_len = (size_t) (eq - seg);
			assert(seg_len - key_len - 1 > 0);	/* no empty value */
			assert(!canonical_is_excluded(seg, key_len, ex, ex_len, n_ex));
			if (prev)
				assert(Cmp(prev, prev_len, seg, key_len) <= 0);
			prev = seg;
			prev_len = key_len;
			p += seg_len + 1;
		}
	}
	free(out);
	free(refout);
	return 0;
}
