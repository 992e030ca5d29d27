/*
 * ct.h — constant-time comparison for signatures and MACs.  Plain C.
 */
#ifndef PAY_CT_H
#define PAY_CT_H

#include <stddef.h>

/* 1 if a and b are equal; time depends only on len (CRYPTO_memcmp). */
extern int	ct_equal(const void *a, const void *b, size_t len);

/* 1 if the two strings are equal; time depends only on the lengths. */
extern int	ct_equal_str(const char *a, size_t a_len, const char *b, size_t b_len);

#endif
