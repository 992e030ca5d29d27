/*
 * secret_store_kat.c — the plain-C layer of the secret store (master_key.c,
 * secret_box.c and the shared aead.c) against known answers made by Python
 * (test/vectors/secrets.py: hashlib, hmac, python3-cryptography).
 * Run by test/suites/secret_store_kat from the top of the tree; prints
 * "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "master_key.h"
#include "secret_box.h"
#include "../vectors/secrets_kat.h"

static int	passed;
static int	failed;

/* Records one check. */
static void
Check(int ok, const char *what)
{
	if (ok)
		passed++;
	else
	{
		failed++;
		printf("FAIL: %s\n", what);
	}
}

/* Decodes a hex fixture into out; returns its length. */
static size_t
Unhex(const char *hex, uint8_t *out)
{
	size_t		n = strlen(hex) / 2;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		unsigned int b;

		sscanf(hex + 2 * i, "%2x", &b);
		out[i] = (uint8_t) b;
	}
	return n;
}

/* Reads a file of test/keys into buf; returns its length. */
static size_t
ReadKeyFile(const char *name, char *buf, size_t cap)
{
	char		path[256];
	FILE	   *f;
	size_t		n;

	snprintf(path, sizeof(path), "test/keys/%s", name);
	f = fopen(path, "rb");
	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

int
main(void)
{
	char		buf[MASTER_KEY_FILE_MAX + 1];
	uint8_t		key_a[32], key_p[32], key[32], check[32], expect[512], got[512], pt[512];
	uint8_t		nonce[12], nonce2[12], tag[16], salt[16], aad[SECRET_AAD_MAX];
	uint8_t		id1[32], id2[32], id3[32];
	size_t		n, start, len, aad_len, ct_len;
	MasterKeyKind kind;

	/* Key files. */
	Unhex(KAT_A_KEY, key_a);
	n = ReadKeyFile("master-a.hex", buf, sizeof(buf));
	Check(master_key_parse(buf, n, &kind, &start, &len) == 0 && kind == MASTER_KEY_RAW &&
		  len == 64 && master_key_from_hex(buf + start, len, key) == 0 &&
		  memcmp(key, key_a, 32) == 0, "master-a.hex is raw key A");
	n = ReadKeyFile("master-a-spaced.hex", buf, sizeof(buf));
	Check(master_key_parse(buf, n, &kind, &start, &len) == 0 && kind == MASTER_KEY_RAW &&
		  master_key_from_hex(buf + start, len, key) == 0 &&
		  memcmp(key, key_a, 32) == 0, "upper-case key A with whitespace around it");
	n = ReadKeyFile("blank.key", buf, sizeof(buf));
	Check(master_key_parse(buf, n, &kind, &start, &len) == -1, "blank key file rejected");
	Check(master_key_parse("0123", 4, &kind, &start, &len) == 0 && kind == MASTER_KEY_PASSPHRASE,
		  "short hex is a passphrase");
	memset(buf, 'a', 63);
	buf[63] = 'g';
	Check(master_key_parse(buf, 64, &kind, &start, &len) == 0 && kind == MASTER_KEY_PASSPHRASE,
		  "64 characters with a non-hex one are a passphrase");
	Check(master_key_from_hex(buf, 64, key) == -1, "from_hex rejects a non-hex digit");

	/* PBKDF2 and the key check. */
	n = ReadKeyFile("master-pass.txt", buf, sizeof(buf));
	Unhex(KAT_P_SALT, salt);
	Unhex(KAT_P_KEY, key_p);
	Check(master_key_parse(buf, n, &kind, &start, &len) == 0 && kind == MASTER_KEY_PASSPHRASE &&
		  buf[start] == 'p' && buf[start + len - 1] == 'e', "passphrase file trimmed");
	Check(master_key_derive(buf + start, len, salt, 16, atoi(KAT_P_ITERATIONS), key) == 0 &&
		  memcmp(key, key_p, 32) == 0, "PBKDF2-HMAC-SHA256 matches hashlib.pbkdf2_hmac");
	Check(master_key_derive(buf + start, len, salt, 16, 599999, key) == -1,
		  "fewer than 600000 iterations refused");
	Unhex(KAT_A_CHECK, expect);
	Check(master_key_check(key_a, check) == 0 && memcmp(check, expect, 32) == 0,
		  "key check of key A");
	Unhex(KAT_P_CHECK, expect);
	Check(master_key_check(key_p, check) == 0 && memcmp(check, expect, 32) == 0,
		  "key check of the passphrase key");
	Check(master_key_cache_id(buf, n, salt, 16, 600000, id1) == 0 &&
		  master_key_cache_id(buf, n, salt, 16, 600001, id2) == 0 &&
		  master_key_cache_id(buf, n - 1, salt, 16, 600000, id3) == 0 &&
		  memcmp(id1, id2, 32) != 0 && memcmp(id1, id3, 32) != 0,
		  "cache id depends on iterations and content");

	/* Associated data and AES-256-GCM (aead.c) against python3-cryptography. */
	len = Unhex(KAT_A_AAD, expect);
	Check(secret_box_aad(KAT_A_OWNER, strlen(KAT_A_OWNER), KAT_A_NAME, strlen(KAT_A_NAME),
						 aad, &aad_len) == 0 && aad_len == len && memcmp(aad, expect, len) == 0,
		  "associated data encoding");
	Unhex(KAT_A_NONCE, nonce);
	n = Unhex(KAT_A_VALUE_HEX, pt);
	ct_len = Unhex(KAT_A_CT, expect);
	Check(n == ct_len && aead_encrypt(key_a, nonce, aad, aad_len, pt, n, got, tag) == 0 &&
		  memcmp(got, expect, ct_len) == 0, "aead_encrypt ciphertext");
	Unhex(KAT_A_TAG, expect);
	Check(memcmp(tag, expect, 16) == 0, "aead_encrypt tag");
	Unhex(KAT_A_CT, expect);
	Check(aead_decrypt(key_a, nonce, aad, aad_len, expect, ct_len, tag, got) == 0 &&
		  memcmp(got, pt, n) == 0, "aead_decrypt");
	expect[3] ^= 0x80;
	Check(aead_decrypt(key_a, nonce, aad, aad_len, expect, ct_len, tag, got) == -1,
		  "aead_decrypt refuses a flipped ciphertext bit");

	/* secret_box_open on the passphrase vector; moved and tampered copies. */
	Unhex(KAT_P_NONCE, nonce);
	ct_len = Unhex(KAT_P_CT, expect);
	Unhex(KAT_P_TAG, tag);
	n = Unhex(KAT_P_VALUE_HEX, pt);
	Check(secret_box_open(key_p, KAT_P_OWNER, strlen(KAT_P_OWNER), KAT_P_NAME, strlen(KAT_P_NAME),
						  nonce, expect, ct_len, tag, got) == 0 && n == ct_len &&
		  memcmp(got, pt, n) == 0, "secret_box_open of the python vector");
	memset(got, 0x55, sizeof(got));
	Check(secret_box_open(key_p, KAT_P_OWNER, strlen(KAT_P_OWNER), "api_secreT", 10,
						  nonce, expect, ct_len, tag, got) == -1, "other name does not open");
	for (len = 0; len < ct_len && got[len] == 0; len++)
		;
	Check(len == ct_len, "a failed open leaves only zeros (GCM decrypted before the tag check)");
	Check(secret_box_open(key_p, "merchant:KAT0", 13, "1api_secret", 11,
						  nonce, expect, ct_len, tag, got) == -1,
		  "shifting a byte from owner to name does not open");
	Check(secret_box_open(key_a, KAT_P_OWNER, strlen(KAT_P_OWNER), KAT_P_NAME, strlen(KAT_P_NAME),
						  nonce, expect, ct_len, tag, got) == -1, "wrong key does not open");
	tag[15] ^= 1;
	Check(secret_box_open(key_p, KAT_P_OWNER, strlen(KAT_P_OWNER), KAT_P_NAME, strlen(KAT_P_NAME),
						  nonce, expect, ct_len, tag, got) == -1, "flipped tag does not open");

	/* Sealing: fresh nonce each time, round trip. */
	Check(secret_box_seal(key_a, "gateway:x", 9, "k", 1, pt, n, nonce, got, tag) == 0 &&
		  secret_box_open(key_a, "gateway:x", 9, "k", 1, nonce, got, n, tag, expect) == 0 &&
		  memcmp(expect, pt, n) == 0, "seal then open");
	Check(secret_box_seal(key_a, "gateway:x", 9, "k", 1, pt, n, nonce2, got, tag) == 0 &&
		  memcmp(nonce, nonce2, 12) != 0, "two seals use two nonces");
	memset(buf, 'o', SECRET_OWNER_MAX + 1);
	Check(secret_box_seal(key_a, buf, SECRET_OWNER_MAX + 1, "k", 1, pt, n, nonce, got, tag) == -1,
		  "oversized owner refused");

	/* HMAC-SHA256 against Python's hmac. */
	Unhex(HMAC_MAC1, expect);
	Check(secret_box_hmac_sha256((const uint8_t *) HMAC_KEY, strlen(HMAC_KEY),
								 (const uint8_t *) HMAC_MSG1, strlen(HMAC_MSG1), got) == 0 &&
		  memcmp(got, expect, 32) == 0, "HMAC-SHA256 message 1");
	Unhex(HMAC_MAC3, expect);
	Check(secret_box_hmac_sha256((const uint8_t *) HMAC_KEY, strlen(HMAC_KEY),
								 (const uint8_t *) "", 0, got) == 0 &&
		  memcmp(got, expect, 32) == 0, "HMAC-SHA256 of the empty message");

	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
