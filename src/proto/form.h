/*
 * form.h — application/x-www-form-urlencoded parsing.  Plain C.
 */
#ifndef PAY_FORM_H
#define PAY_FORM_H

#include <stddef.h>

/*
 * Decode one form component ('+' is a space, %XX a byte) into out, which
 * needs len bytes.  Returns the decoded length, or -1 on a bad escape.
 */
extern long form_decode(const char *in, size_t len, char *out);

/* Called for each name=value pair, both decoded; return non-zero to stop. */
typedef int (*form_pair_fn) (void *arg, const char *name, size_t name_len,
							 const char *value, size_t value_len);

/*
 * Split body on '&', each part on its first '=', decode both and call fn.
 * Empty parts are skipped.  Returns 0, -1 on a bad escape, or fn's non-zero
 * result.  scratch must hold len bytes.
 */
extern int	form_parse(const char *body, size_t len, char *scratch, form_pair_fn fn, void *arg);

#endif
