/*
 * base64.h — standard base64 (RFC 4648, with padding).  Plain C.
 */
#ifndef PAY_BASE64_H
#define PAY_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Encoded length of len bytes, without the NUL. */
#define BASE64_ENCODED_LEN(len) ((((len) + 2) / 3) * 4)

/* Writes BASE64_ENCODED_LEN(len) characters and a NUL to out. */
extern void base64_encode(const uint8_t *in, size_t len, char *out);

/*
 * Decodes base64, skipping ASCII whitespace (PEM bodies span lines).  -1 on
 * any other non-alphabet character, bad padding or a result over out_cap.
 */
extern int	base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len);

#endif
