/*
 * oauth_token.h — OAuth 2 client-credentials access tokens of PSPs that
 * want one (PayPal), kept in the memory of the process that sends the
 * requests (oauth_token.c).
 */
#ifndef PAY_OAUTH_TOKEN_H
#define PAY_OAUTH_TOKEN_H

#include <stddef.h>

/*
 * A live access token for destination ("gateway:<name>"), palloc'd (scrub
 * it with SecretScrub after use): the kept one, else one fetched now from
 * token_url with HTTP Basic client_id:client_secret.  ERROR when the PSP
 * gives none (the request being built is then tried again later).
 */
extern char *OauthTokenGet(const char *destination, const char *token_url,
						   const char *client_id, size_t client_id_len,
						   const char *client_secret, size_t client_secret_len, size_t *len);

/*
 * Forget destination's token (the PSP refused it: it expired or was
 * revoked early); true when one was kept, so that the request it failed
 * is worth sending again with a new one.
 */
extern bool OauthTokenForget(const char *destination);

#endif
