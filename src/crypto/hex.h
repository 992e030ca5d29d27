/*
 * hex.h — lower-case hex encoding.  Plain C.
 */
#ifndef PAY_HEX_H
#define PAY_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Value of one hex digit of either case, or -1. */
extern int	hex_digit_value(int c);

/* Writes 2*len lower-case hex digits and a NUL to out (2*len+1 bytes). */
extern void hex_encode(const uint8_t *in, size_t len, char *out);

/* Decodes 2*n hex digits (either case) into n bytes; -1 on odd length or a non-hex digit. */
extern int	hex_decode(const char *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len);

#endif
