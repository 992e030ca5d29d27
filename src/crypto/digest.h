/*
 * digest.h — message digests a PSP names for its files (WeChat Pay's bill
 * downloads carry a SHA-1 of the file).  Plain C, OpenSSL 3 EVP.
 */
#ifndef PAY_CRYPTO_DIGEST_H
#define PAY_CRYPTO_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN 20

/* SHA-1 of buf; 0 on success, -1 if OpenSSL fails. */
extern int	sha1(const uint8_t *buf, size_t len, uint8_t out[SHA1_LEN]);

#endif
