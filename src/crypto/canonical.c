/*
 * canonical.c — the canonical parameter string (see canonical.h).
 */
#include "canonical.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* memcmp order on (a, a_len) and (b, b_len); a proper prefix sorts first. */
static int
CompareBytes(const char *a, size_t a_len, const char *b, size_t b_len)
{
	size_t		n = a_len < b_len ? a_len : b_len;
	int			c = n > 0 ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	return (a_len > b_len) - (a_len < b_len);
}

/* qsort comparator: key bytes, then value bytes, so the order is total. */
static int
ComparePairs(const void *pa, const void *pb)
{
	const CanonicalPair *a = pa;
	const CanonicalPair *b = pb;
	int			c = CompareBytes(a->key, a->key_len, b->key, b->key_len);

	if (c != 0)
		return c;
	return CompareBytes(a->value ? a->value : "", a->value ? a->value_len : 0,
						b->value ? b->value : "", b->value ? b->value_len : 0);
}

int
canonical_is_excluded(const char *key, size_t key_len,
					  const char *const *exclude, const size_t *exclude_len,
					  size_t n_exclude)
{
	size_t		i;

	for (i = 0; i < n_exclude; i++)
		if (exclude_len[i] == key_len &&
			(key_len == 0 || memcmp(exclude[i], key, key_len) == 0))
			return 1;
	return 0;
}

size_t
canonical_build(CanonicalPair *pairs, size_t n,
				const char *const *exclude, const size_t *exclude_len,
				size_t n_exclude, char *out, size_t out_cap)
{
	size_t		total = 0;
	size_t		i;
	int			first = 1;

	if (n > CANONICAL_PAIRS_MAX)
		return (size_t) -1;
	if (n > 1)
		qsort(pairs, n, sizeof(CanonicalPair), ComparePairs);

	/* Size first, so nothing is written unless all of it fits. */
	for (i = 0; i < n; i++)
	{
		const CanonicalPair *p = &pairs[i];
		size_t		piece;

		if (p->value == NULL || p->value_len == 0 ||
			canonical_is_excluded(p->key, p->key_len, exclude, exclude_len, n_exclude))
			continue;
		if (p->key_len > SIZE_MAX / 4 || p->value_len > SIZE_MAX / 4)
			return (size_t) -1;
		piece = p->key_len + 1 + p->value_len + (first ? 0 : 1);
		if (total > SIZE_MAX - 1 - piece)
			return (size_t) -1;
		total += piece;
		first = 0;
	}
	if (out == NULL || out_cap < total + 1)
		return total;

	first = 1;
	for (i = 0; i < n; i++)
	{
		const CanonicalPair *p = &pairs[i];

		if (p->value == NULL || p->value_len == 0 ||
			canonical_is_excluded(p->key, p->key_len, exclude, exclude_len, n_exclude))
			continue;
		if (!first)
			*out++ = '&';
		if (p->key_len > 0)
			memcpy(out, p->key, p->key_len);
		out += p->key_len;
		*out++ = '=';
		memcpy(out, p->value, p->value_len);
		out += p->value_len;
		first = 0;
	}
	*out = '\0';
	return total;
}
