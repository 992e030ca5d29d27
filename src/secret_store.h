/*
 * secret_store.h — using a credential of the secret store (pay.secrets) from
 * C without handing it to SQL.  Signing and verification code takes a
 * secret's (owner, name), fetches the plaintext here, uses it and scrubs it:
 *
 *     char   *key = SecretFetch("gateway:stripe", "webhook_secret", &len);
 *
 *     PG_TRY();
 *     {
 *         ... use key, len ...
 *     }
 *     PG_FINALLY();
 *     {
 *         SecretScrub(key, len);
 *     }
 *     PG_END_TRY();
 *
 * The table is read with the privileges of its owner, so the caller's role
 * needs no access to pay.secrets: what a role may do with a secret is decided
 * by the SQL functions that call this API.  Never put the plaintext in a
 * message, a log line or a result.
 */
#ifndef PAY_SECRET_STORE_H
#define PAY_SECRET_STORE_H

#include <stddef.h>

/*
 * The plaintext of secret (owner, name), palloc'd in the current memory
 * context, NUL-terminated (*len does not count the NUL).  Raises an ERROR if
 * the secret does not exist (42704), the master key is unavailable or wrong,
 * or the ciphertext does not verify (XX001).
 */
extern char *SecretFetch(const char *owner, const char *name, size_t *len);

/* Like SecretFetch, but NULL when (owner, name) does not exist. */
extern char *SecretFetchIfExists(const char *owner, const char *name, size_t *len);

/* Cleanses len bytes and the NUL of a fetched plaintext and frees it; NULL is a no-op. */
extern void SecretScrub(char *plaintext, size_t len);

#endif
