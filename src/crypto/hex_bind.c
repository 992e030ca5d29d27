/*
 * hex_bind.c — keeps pay.so's calls of hex_encode() and hex_decode() on
 * crypto/hex.c.
 *
 * The postgres executable exports functions of the same names (utils/
 * builtins.h, other signatures: no NUL, no bounds, ereport on bad input),
 * and the dynamic linker binds a shared library's calls of a default-
 * visibility symbol to the executable's definition first.  Without this
 * file pay.so's Stripe/Adyen code called PostgreSQL's hex_decode.  An ELF
 * symbol takes the most restrictive visibility of all its references, so a
 * hidden reference here makes both symbols hidden, hence bound locally, in
 * pay.so.  (Linking with -Wl,-Bsymbolic, or prefixed names in hex.h, would
 * do the same; then this file can go.)  Harmless in the fuzzers.
 */
#include <stddef.h>
#include <stdint.h>

extern void hex_encode(const uint8_t *in, size_t len, char *out)
			__attribute__((visibility("hidden")));
extern int	hex_decode(const char *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
			__attribute__((visibility("hidden")));

/* Referenced so that the hidden references above reach the linker. */
void		(*const pay_hex_bind_encode) (const uint8_t *, size_t, char *) = hex_encode;
int			(*const pay_hex_bind_decode) (const char *, size_t, uint8_t *, size_t, size_t *) = hex_decode;
