/*
 * canonical.c — the canonical parameter string (see canonical.h).
 */
#include "canonical.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Sorted with insertion sort up to this many pairs (no allocation), qsort above. */
#define CANONICAL_INSERTION_SORT_MAX 32

/* Byte order (unsigned) on (a, a_len) and (b, b_len); a proper prefix sorts first. */
static int
CompareBytes(const char *a, size_t a_len, const char *b, size_t b_len)
{
	const unsigned char *ua = (const unsigned char *) a;
	const unsigned char *ub = (const unsigned char *) b;
	size_t		n = a_len < b_len ? a_len : b_len;
	size_t		i;

	/* Keys differ early, so a plain loop beats a memcmp call here. */
	for (i = 0; i < n; i++)
		if (ua[i] != ub[i])
			return ua[i] < ub[i] ? -1 : 1;
	return (a_len > b_len) - (a_len < b_len);
}

/* Key bytes, then value bytes, so the order is total. */
static int
ComparePairValues(const CanonicalPair *a, const CanonicalPair *b)
{
	int			c = CompareBytes(a->key, a->key_len, b->key, b->key_len);

	if (c != 0)
		return c;
	return CompareBytes(a->value, a->value_len, b->value, b->value_len);
}

/* qsort comparator over ComparePairValues. */
static int
ComparePairs(const void *pa, const void *pb)
{
	return ComparePairValues(pa, pb);
}

/* 1 if the pair goes into the canonical string: a value, and a key not excluded. */
static int
PairIncluded(const CanonicalPair *p, const char *const *exclude, const size_t *exclude_len,
			 size_t n_exclude)
{
	return p->value != NULL && p->value_len > 0 &&
		!canonical_is_excluded(p->key, p->key_len, exclude, exclude_len, n_exclude);
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
	size_t		m = 0;
	size_t		i;

	if (n > CANONICAL_PAIRS_MAX)
		return (size_t) -1;

	/* The included pairs to the front, then sort only those. */
	for (i = 0; i < n; i++)
	{
		if (!PairIncluded(&pairs[i], exclude, exclude_len, n_exclude))
			continue;
		if (i != m)
		{
			CanonicalPair tmp = pairs[m];

			pairs[m] = pairs[i];
			pairs[i] = tmp;
		}
		m++;
	}
	if (m <= CANONICAL_INSERTION_SORT_MAX)
	{
		for (i = 1; i < m; i++)
		{
			CanonicalPair cur = pairs[i];
			size_t		j = i;

			while (j > 0 && ComparePairValues(&pairs[j - 1], &cur) > 0)
			{
				pairs[j] = pairs[j - 1];
				j--;
			}
			pairs[j] = cur;
		}
	}
	else
		qsort(pairs, m, sizeof(CanonicalPair), ComparePairs);

	/* Size first, so nothing is written unless all of it fits. */
	for (i = 0; i < m; i++)
	{
		size_t		piece;

		if (pairs[i].key_len > SIZE_MAX / 4 || pairs[i].value_len > SIZE_MAX / 4)
			return (size_t) -1;
		piece = pairs[i].key_len + 1 + pairs[i].value_len + (i > 0 ? 1 : 0);
		if (total > SIZE_MAX - 1 - piece)
			return (size_t) -1;
		total += piece;
	}
	if (out == NULL || out_cap < total + 1)
		return total;

	for (i = 0; i < m; i++)
	{
		const CanonicalPair *p = &pairs[i];

		if (i > 0)
			*out++ = '&';
		if (p->key_len > 0)
			memcpy(out, p->key, p->key_len);
		out += p->key_len;
		*out++ = '=';
		memcpy(out, p->value, p->value_len);
		out += p->value_len;
	}
	*out = '\0';
	return total;
}
