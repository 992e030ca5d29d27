/* utf8.h — strict UTF-8 validation for request bodies and header values */
#ifndef PAY_PROXY_UTF8_H
#define PAY_PROXY_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if invalid */
size_t Utf8SequenceLength(const unsigned char *s, size_t len);

/* True if s[0..len) is well-formed UTF-8 (RFC 3629) without NUL bytes */
bool Utf8IsValidText(const char *s, size_t len);

#endif
