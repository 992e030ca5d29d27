/*
 * digest.c — message digests a PSP names for its files.
 *
 * SHA-1 is what WeChat Pay states for a bill it serves (hash_type SHA1): the
 * digest checks that the file is the one the signed API answer described
 * (integrity of the download), not a signature.
 */
#include "digest.h"

#include <openssl/evp.h>

int
sha1(const uint8_t *buf, size_t len, uint8_t out[SHA1_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(buf, len, out, &n, EVP_sha1(), NULL) != 1 || n != SHA1_LEN)
		return -1;
	return 0;
}
