/*
 * canonical.h — the canonical parameter string that request and notification
 * signatures are computed over (the common "generateSign" of PSP SDKs): keys in byte order,
 * "k=v" joined by "&", excluded keys and empty values left out, values NOT
 * URL-escaped.  Plain C.
 */
#ifndef PAY_CANONICAL_H
#define PAY_CANONICAL_H

#include <stddef.h>

/* Most pairs one canonical string may have (a signed request has a few dozen). */
#define CANONICAL_PAIRS_MAX 4096

/* One parameter; value NULL or value_len 0 means "empty" (left out). */
typedef struct CanonicalPair
{
	const char *key;
	size_t		key_len;
	const char *value;
	size_t		value_len;
} CanonicalPair;

/*
 * Writes the canonical string of pairs[0..n-1] and a NUL to out when it fits
 * in out_cap bytes.  Keys equal to one of the n_exclude exclude[] strings
 * (byte for byte, exclude_len[i] bytes) and pairs with an empty value are
 * left out; the rest are sorted by key (bytes, unsigned, a prefix first;
 * equal keys by value).  Reorders pairs in place: the included pairs come
 * first, sorted.  Returns the length of the canonical string without the NUL
 * (snprintf-like: call with out_cap 0 to size the buffer; nothing is written
 * unless it all fits), or (size_t) -1 when n exceeds CANONICAL_PAIRS_MAX or
 * the length would overflow size_t.
 */
extern size_t canonical_build(CanonicalPair *pairs, size_t n,
							  const char *const *exclude, const size_t *exclude_len,
							  size_t n_exclude, char *out, size_t out_cap);

/* 1 if key (key_len bytes) equals one of the exclude strings. */
extern int	canonical_is_excluded(const char *key, size_t key_len,
								  const char *const *exclude, const size_t *exclude_len,
								  size_t n_exclude);

#endif
