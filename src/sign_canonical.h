/*
 * sign_canonical.h — the canonical parameter string of a jsonb object, for
 * the SQL glue of every scheme that signs one (HMAC, SHA-256, Alipay RSA2).
 */
#ifndef PAY_SIGN_CANONICAL_H
#define PAY_SIGN_CANONICAL_H

#include "postgres.h"

#include "utils/array.h"
#include "utils/jsonb.h"

/*
 * canonical_query(params, exclude) as a palloc'd NUL-terminated string of
 * *len bytes.  exclude is a text[] (NULL elements ignored) or NULL for none.
 * Raises 22023 when params is not a JSON object.
 */
extern char *CanonicalQueryJsonb(Jsonb *params, ArrayType *exclude, size_t *len);

#endif
