/*
 * form_encode.h — application/x-www-form-urlencoded escaping (WHATWG URL
 * standard): ALPHA, DIGIT and *-._ stay, space becomes '+', every other
 * byte is %XX with upper-case hex.  Plain C, no postgres.h.  Decoding is
 * form.h's.
 */
#ifndef PAY_FORM_ENCODE_H
#define PAY_FORM_ENCODE_H

#include <stddef.h>

/* Bytes form_encode may write for len input bytes (no NUL). */
#define FORM_ENCODED_MAX(len) ((len) * 3)

/* Escapes len bytes of in into out (room for FORM_ENCODED_MAX(len)); returns the length written. */
extern size_t form_encode(const char *in, size_t len, char *out);

#endif
