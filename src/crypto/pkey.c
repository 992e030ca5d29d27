/*
 * pkey.c — RSA key loading through OpenSSL 3 decoders, a small LRU cache of
 * parsed keys, and SHA256withRSA with per-key operation contexts.
 *
 * The contexts are set up once per cached key (padding PKCS#1 v1.5, digest
 * SHA-256) and reused, as `openssl speed` does, so that a verification costs
 * one SHA-256 and one RSA public operation.
 */
#include "pkey.h"

#include "base64.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define DIGEST_LEN 32

struct PkeyRsa
{
	EVP_PKEY   *pkey;			/* NULL: a free slot */
	char		kind;			/* 's' private (signing), 'v' public (verifying) */
	uint8_t		digest[DIGEST_LEN];	/* SHA-256 of kind and key text */
	uint64_t	last_used;
	char	   *text;			/* copy of the (trimmed) key text, for the fast path */
	size_t		text_len;
	size_t		sig_len;
	EVP_PKEY_CTX *sign_ctx;		/* made on first use */
	EVP_PKEY_CTX *verify_ctx;
};

static PkeyRsa cache[PKEY_CACHE_SIZE];
static PkeyRsa *cache_last;		/* the entry the previous load returned */
static uint64_t cache_clock;
static EVP_MD *sha256;
static EVP_MD_CTX *md_ctx;

/* Fetch SHA-256 once per process; 0 on success. */
static int
DigestInit(void)
{
	if (sha256 == NULL)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (md_ctx == NULL)
		md_ctx = EVP_MD_CTX_new();
	return sha256 != NULL && md_ctx != NULL ? 0 : -1;
}

/* SHA-256 of a (a_len bytes, may be 0) followed by b; 0 on success. */
static int
Sha256(const void *a, size_t a_len, const void *b, size_t b_len, uint8_t out[DIGEST_LEN])
{
	unsigned int n = 0;

	if (DigestInit() != 0)
		return -1;
	return EVP_DigestInit_ex2(md_ctx, sha256, NULL) == 1 &&
		EVP_DigestUpdate(md_ctx, a, a_len) == 1 &&
		EVP_DigestUpdate(md_ctx, b, b_len) == 1 &&
		EVP_DigestFinal_ex(md_ctx, out, &n) == 1 && n == DIGEST_LEN ? 0 : -1;
}

/* 1 if needle occurs in the first len bytes of text. */
static int
Contains(const char *text, size_t len, const char *needle)
{
	size_t		n = strlen(needle);
	size_t		i;

	for (i = 0; i + n <= len; i++)
		if (text[i] == needle[0] && memcmp(text + i, needle, n) == 0)
			return 1;
	return 0;
}

/* ASCII whitespace around pasted keys. */
static int
IsSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decoder passphrase callback: encrypted keys are refused, never prompted for. */
static int
NoPassphrase(char *pass, size_t pass_size, size_t *pass_len, const OSSL_PARAM params[], void *arg)
{
	(void) pass, (void) pass_size, (void) pass_len, (void) params, (void) arg;
	return 0;
}

/* PEM passphrase callback with the same policy. */
static int
NoPemPassphrase(char *buf, int size, int rwflag, void *u)
{
	(void) buf, (void) size, (void) rwflag, (void) u;
	return -1;
}

/* Run OpenSSL's key decoders over data; the key or NULL. */
static EVP_PKEY *
Decode(const uint8_t *data, size_t len, const char *input_type, int selection)
{
	EVP_PKEY   *pkey = NULL;
	OSSL_DECODER_CTX *dctx;
	const unsigned char *p = data;
	size_t		left = len;

	dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, input_type, NULL, NULL, selection, NULL, NULL);
	if (dctx == NULL)
		return NULL;
	if (OSSL_DECODER_CTX_set_passphrase_cb(dctx, NoPassphrase, NULL) != 1 ||
		OSSL_DECODER_from_data(dctx, &p, &left) != 1)
	{
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	OSSL_DECODER_CTX_free(dctx);
	return pkey;
}

/* The public key of the first certificate in a PEM text, or NULL. */
static EVP_PKEY *
CertificateKeyPem(const char *text, size_t len)
{
	BIO		   *bio = BIO_new_mem_buf(text, (int) len);
	X509	   *cert;
	EVP_PKEY   *pkey = NULL;

	if (bio == NULL)
		return NULL;
	cert = PEM_read_bio_X509(bio, NULL, NoPemPassphrase, NULL);
	if (cert != NULL)
		pkey = X509_get_pubkey(cert);
	X509_free(cert);
	BIO_free(bio);
	return pkey;
}

/* The public key of a DER certificate, or NULL. */
static EVP_PKEY *
CertificateKeyDer(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509	   *cert = d2i_X509(NULL, &p, (long) len);
	EVP_PKEY   *pkey = NULL;

	if (cert != NULL && p == der + len)
		pkey = X509_get_pubkey(cert);
	X509_free(cert);
	return pkey;
}

/* 1 if pkey holds the private exponent of an RSA key. */
static int
HasPrivateExponent(const EVP_PKEY *pkey)
{
	BIGNUM	   *d = NULL;
	int			ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D, &d) == 1 && d != NULL;

	BN_clear_free(d);
	return ok;
}

/* Parse a private key text (PKCS#8 or PKCS#1 PEM). */
static PkeyResult
ParsePrivate(const char *text, size_t len, EVP_PKEY **out)
{
	EVP_PKEY   *pkey;

	if (!Contains(text, len, "-----BEGIN "))
		return PKEY_NOT_A_KEY;	/* private keys come as PEM only */
	pkey = Decode((const uint8_t *) text, len, "PEM", EVP_PKEY_KEYPAIR);
	if (pkey == NULL)
		return Contains(text, len, "ENCRYPTED") ? PKEY_ENCRYPTED : PKEY_NOT_A_KEY;
	if (EVP_PKEY_is_a(pkey, "RSA") && !HasPrivateExponent(pkey))
	{
		EVP_PKEY_free(pkey);
		return PKEY_NOT_A_KEY;	/* a public key where a private one belongs */
	}
	*out = pkey;
	return PKEY_OK;
}

/* Parse a public key text: PEM key, PEM certificate, or bare base64 DER. */
static PkeyResult
ParsePublic(const char *text, size_t len, EVP_PKEY **out)
{
	EVP_PKEY   *pkey = NULL;

	if (Contains(text, len, "-----BEGIN "))
	{
		if (Contains(text, len, "-----BEGIN CERTIFICATE-----"))
			pkey = CertificateKeyPem(text, len);
		else
			pkey = Decode((const uint8_t *) text, len, "PEM", EVP_PKEY_PUBLIC_KEY);
	}
	else
	{
		/* base64 is 4 characters per 3 bytes, whitespace skipped */
		size_t		cap = len / 4 * 3 + 3;
		uint8_t    *der = malloc(cap);
		size_t		der_len = 0;

		if (der == NULL)
			return PKEY_NO_MEMORY;
		if (base64_decode(text, len, der, cap, &der_len) == 0 && der_len > 0)
		{
			pkey = Decode(der, der_len, "DER", EVP_PKEY_PUBLIC_KEY);
			if (pkey == NULL)
				pkey = CertificateKeyDer(der, der_len);
		}
		free(der);
	}
	if (pkey == NULL)
		return PKEY_NOT_A_KEY;
	*out = pkey;
	return PKEY_OK;
}

/* Free what a cache slot holds and mark it free. */
static void
SlotClear(PkeyRsa *slot)
{
	EVP_PKEY_CTX_free(slot->sign_ctx);
	EVP_PKEY_CTX_free(slot->verify_ctx);
	EVP_PKEY_free(slot->pkey);
	OPENSSL_clear_free(slot->text, slot->text_len);	/* may be a private key */
	if (cache_last == slot)
		cache_last = NULL;
	memset(slot, 0, sizeof(*slot));
}

static PkeyResult SelfTest(PkeyRsa *key);

/* Look a key text up in the cache, parsing and inserting it on a miss. */
static PkeyResult
Load(char kind, const char *text, size_t len, PkeyRsa **key)
{
	uint8_t		digest[DIGEST_LEN];
	EVP_PKEY   *pkey = NULL;
	PkeyRsa    *slot = NULL;
	PkeyResult	r;
	int			bits;
	int			i;

	/* pasted keys often come with spaces or blank lines around them */
	while (len > 0 && IsSpace(text[0]))
		text++, len--;
	while (len > 0 && IsSpace(text[len - 1]))
		len--;
	if (len == 0 || len > PKEY_TEXT_MAX)
		return PKEY_NOT_A_KEY;
	/* the same key as last time (verifying a batch): no digest needed */
	if (cache_last != NULL && cache_last->kind == kind && cache_last->text_len == len &&
		memcmp(cache_last->text, text, len) == 0)
	{
		cache_last->last_used = ++cache_clock;
		*key = cache_last;
		return PKEY_OK;
	}
	if (Sha256(&kind, 1, text, len, digest) != 0)
		return PKEY_NO_MEMORY;
	for (i = 0; i < PKEY_CACHE_SIZE; i++)
		if (cache[i].pkey != NULL && cache[i].kind == kind &&
			memcmp(cache[i].digest, digest, DIGEST_LEN) == 0)
		{
			cache[i].last_used = ++cache_clock;
			cache_last = &cache[i];
			*key = &cache[i];
			return PKEY_OK;
		}

	r = kind == 's' ? ParsePrivate(text, len, &pkey) : ParsePublic(text, len, &pkey);
	ERR_clear_error();			/* decoders leave their attempts on the queue */
	if (r != PKEY_OK)
		return r;
	if (!EVP_PKEY_is_a(pkey, "RSA"))
	{
		EVP_PKEY_free(pkey);
		return PKEY_NOT_RSA;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < PKEY_RSA_BITS_MIN || bits > PKEY_RSA_BITS_MAX)
	{
		EVP_PKEY_free(pkey);
		return PKEY_BAD_SIZE;
	}

	/* a free slot, else the least recently used one */
	for (i = 0; i < PKEY_CACHE_SIZE; i++)
	{
		if (cache[i].pkey == NULL)
		{
			slot = &cache[i];
			break;
		}
		if (slot == NULL || cache[i].last_used < slot->last_used)
			slot = &cache[i];
	}
	SlotClear(slot);
	slot->pkey = pkey;
	slot->kind = kind;
	memcpy(slot->digest, digest, DIGEST_LEN);
	slot->last_used = ++cache_clock;
	slot->sig_len = (size_t) EVP_PKEY_get_size(pkey);
	slot->text = OPENSSL_memdup(text, len);
	if (slot->text == NULL)
	{
		SlotClear(slot);
		return PKEY_NO_MEMORY;
	}
	slot->text_len = len;
	if (kind == 's' && (r = SelfTest(slot)) != PKEY_OK)
	{
		SlotClear(slot);
		return r;
	}
	cache_last = slot;
	*key = slot;
	return PKEY_OK;
}

PkeyResult
pkey_load_private(const char *text, size_t len, PkeyRsa **key)
{
	return Load('s', text, len, key);
}

PkeyResult
pkey_load_public(const char *text, size_t len, PkeyRsa **key)
{
	return Load('v', text, len, key);
}

size_t
pkey_sig_len(const PkeyRsa *key)
{
	return key->sig_len;
}

/* An operation context for key: PKCS#1 v1.5 padding, SHA-256 DigestInfo. */
static EVP_PKEY_CTX *
OperationContext(PkeyRsa *key, int sign)
{
	EVP_PKEY_CTX **slot = sign ? &key->sign_ctx : &key->verify_ctx;
	EVP_PKEY_CTX *ctx;

	if (*slot != NULL)
		return *slot;
	if (DigestInit() != 0)
		return NULL;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
	if (ctx == NULL ||
		(sign ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) != 1 ||
		EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
		EVP_PKEY_CTX_set_signature_md(ctx, sha256) != 1)
	{
		EVP_PKEY_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	*slot = ctx;
	return ctx;
}

int
pkey_rsa_sha256_sign(PkeyRsa *key, const uint8_t *msg, size_t msg_len,
					 uint8_t *sig, size_t *sig_len)
{
	EVP_PKEY_CTX *ctx = OperationContext(key, 1);
	uint8_t		digest[DIGEST_LEN];
	size_t		n = key->sig_len;

	if (ctx == NULL || Sha256(NULL, 0, msg, msg_len, digest) != 0 ||
		EVP_PKEY_sign(ctx, sig, &n, digest, DIGEST_LEN) != 1)
	{
		ERR_clear_error();
		return -1;
	}
	*sig_len = n;
	return 0;
}

int
pkey_rsa_sha256_verify(PkeyRsa *key, const uint8_t *msg, size_t msg_len,
					   const uint8_t *sig, size_t sig_len)
{
	EVP_PKEY_CTX *ctx;
	uint8_t		digest[DIGEST_LEN];

	if (sig_len != key->sig_len)
		return 0;
	ctx = OperationContext(key, 0);
	if (ctx == NULL || Sha256(NULL, 0, msg, msg_len, digest) != 0)
		return 0;
	if (EVP_PKEY_verify(ctx, sig, sig_len, digest, DIGEST_LEN) == 1)
		return 1;
	ERR_clear_error();
	return 0;
}

/*
 * A private key must verify its own signature: a key whose parts were damaged
 * (a changed character in the PEM can still decode) signs garbage otherwise.
 */
static PkeyResult
SelfTest(PkeyRsa *key)
{
	static const uint8_t msg[] = "pay private key self-test";
	uint8_t		sig[PKEY_SIG_MAX];
	size_t		sig_len = 0;

	if (key->sig_len > sizeof(sig))
		return PKEY_BAD_SIZE;
	if (pkey_rsa_sha256_sign(key, msg, sizeof(msg), sig, &sig_len) != 0 ||
		pkey_rsa_sha256_verify(key, msg, sizeof(msg), sig, sig_len) != 1)
	{
		ERR_clear_error();
		return PKEY_DAMAGED;
	}
	return PKEY_OK;
}

const char *
pkey_result_text(PkeyResult r)
{
	switch (r)
	{
		case PKEY_OK:
			return "ok";
		case PKEY_NOT_A_KEY:
			return "not a key";
		case PKEY_ENCRYPTED:
			return "an encrypted private key (passphrases are not supported)";
		case PKEY_NOT_RSA:
			return "not an RSA key";
		case PKEY_BAD_SIZE:
			return "an RSA key whose size is outside 2048 to 8192 bits";
		case PKEY_DAMAGED:
			return "a damaged private key (it does not verify its own signature)";
		case PKEY_NO_MEMORY:
			return "out of memory";
	}
	return "unknown";
}

int
pkey_cache_count(void)
{
	int			n = 0;
	int			i;

	for (i = 0; i < PKEY_CACHE_SIZE; i++)
		n += cache[i].pkey != NULL;
	return n;
}

void
pkey_cache_clear(void)
{
	int			i;

	for (i = 0; i < PKEY_CACHE_SIZE; i++)
		SlotClear(&cache[i]);
}
