/*
 * oauth_token.c — OAuth 2 access tokens (client credentials grant), one per
 * gateway, kept in the memory of the process that builds the gateway's
 * requests: the dispatcher.
 *
 * Why in memory, and fetched here rather than queued in the outbox:
 *   - an access token is a credential; kept only in this process's memory
 *     it is never at rest (no table, no WAL, no backup, no psp_answers
 *     row) and never logged: errors name the HTTP status and the PSP's
 *     error code, never a body;
 *   - the dispatcher is one process, so "one refresh at a time" needs no
 *     lock: the first request built after the token's refresh time
 *     fetches the next one while the others of the batch wait for it, and
 *     every later transfer shares it;
 *   - a token lasts hours (PayPal: 9), so the one blocking fetch per
 *     gateway and lifetime costs the dispatcher loop one round trip;
 *     a request the PSP answers 401 (a token it ended early) makes the
 *     dispatcher forget the token and send the request again
 *     (dispatcher_worker.c), which fetches a new one.
 * A dispatcher restart costs one fetch.  A token is refreshed a tenth of
 * its lifetime (at most 5 minutes) before it expires, so that no request
 * leaves with a token that dies on the way.  The kept entry remembers a
 * digest of the credentials it was fetched with: new credentials (a
 * rotated secret) fetch a new token at once.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "callback.h"
#include "ct.h"
#include "hmac.h"
#include "http_fetch.h"
#include "oauth_token.h"
#include "secret_store.h"

#define TOKENS_MAX 32
#define TOKEN_ANSWER_MAX (64 * 1024)
#define REFRESH_MARGIN_MAX_S 300

typedef struct KeptToken
{
	char	   *destination;	/* malloc'd; NULL: free slot */
	uint8_t		credentials[SHA256_LEN];
	char	   *token;			/* malloc'd */
	size_t		len;
	TimestampTz refresh_at;
} KeptToken;

static KeptToken tokens[TOKENS_MAX];

/* The token forgotten; the entry stays, so that its destination is known to use tokens. */
static void
DropToken(KeptToken *t)
{
	if (t->token != NULL)
		explicit_bzero(t->token, t->len);
	free(t->token);
	t->token = NULL;
	t->len = 0;
}

static void
Drop(KeptToken *t)
{
	DropToken(t);
	free(t->destination);
	memset(t, 0, sizeof(*t));
}

static KeptToken *
Find(const char *destination)
{
	for (int i = 0; i < TOKENS_MAX; i++)
		if (tokens[i].destination != NULL && strcmp(tokens[i].destination, destination) == 0)
			return &tokens[i];
	return NULL;
}

/* A slot for a new token: a free one, else the one due soonest. */
static KeptToken *
Slot(void)
{
	KeptToken  *oldest = &tokens[0];

	for (int i = 0; i < TOKENS_MAX; i++)
	{
		if (tokens[i].destination == NULL)
			return &tokens[i];
		if (tokens[i].refresh_at < oldest->refresh_at)
			oldest = &tokens[i];
	}
	Drop(oldest);
	return oldest;
}

static void
CredentialDigest(const char *id, size_t id_len, const char *secret, size_t secret_len, uint8_t out[SHA256_LEN])
{
	CryptoPart	parts[3] = {{id, id_len}, {"\n", 1}, {secret, secret_len}};

	if (sha256_parts(parts, 3, out) != 0)
		elog(ERROR, "could not digest the OAuth client credentials");
}

/* The token answer's access_token and lifetime; ERROR naming what is wrong (never the body). */
static char *
ReadAnswer(const HttpFetchResult *res, const char *token_url, int64 *expires_in)
{
	Jsonb	   *v;
	char	   *token,
			   *type,
			   *seconds;

	if (res->status != 200)
	{
		char	   *error = NULL;

		/* an OAuth error answer names its error code; anything else is left unread */
		if (res->status >= 400 && res->status < 500 && res->body_len > 0 && res->body_len < 4096)
		{
			PG_TRY();
			{
				error = JsonbGetText(DatumGetJsonbP(DirectFunctionCall1(pay_json_body,
																		CStringGetTextDatum(res->body))),
									 "error");
			}
			PG_CATCH();
			{
				FlushErrorState();
			}
			PG_END_TRY();
		}
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the OAuth token request to %s was answered HTTP %ld%s%s", token_url, res->status,
						error ? ": " : "", error ? error : "")));
	}
	v = DatumGetJsonbP(DirectFunctionCall1(pay_json_body, CStringGetTextDatum(res->body)));
	token = JsonbGetText(v, "access_token");
	type = JsonbGetText(v, "token_type");
	seconds = JsonbGetText(v, "expires_in");
	if (token == NULL || token[0] == '\0' || strpbrk(token, "\r\n") != NULL ||
		type == NULL || pg_strcasecmp(type, "Bearer") != 0 ||
		seconds == NULL || strspn(seconds, "0123456789") != strlen(seconds) || strlen(seconds) < 1 ||
		strlen(seconds) > 9)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the OAuth token answer of %s has no Bearer access_token with a whole expires_in", token_url)));
	*expires_in = pg_strtoint64(seconds);
	return token;
}

/* Fetch a token into slot t. */
static void
Fetch(KeptToken *t, const char *token_url, const char *userpwd)
{
	static const char *const headers[] = {"Accept: application/json",
	"Content-Type: application/x-www-form-urlencoded"};
	HttpFetchRequest req = {0};
	HttpFetchResult res;
	char	   *token;
	int64		expires_in;
	int64		margin;

	req.method = "POST";
	req.url = token_url;
	req.headers = headers;
	req.nheaders = 2;
	req.body = "grant_type=client_credentials";
	req.userpwd = userpwd;
	req.body_max = TOKEN_ANSWER_MAX;
	if (!HttpFetch(&req, &res))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the OAuth token request to %s failed: %s", token_url, res.error)));
	PG_TRY();
	{
		token = ReadAnswer(&res, token_url, &expires_in);
	}
	PG_FINALLY();
	{
		explicit_bzero(res.body, res.body_len);
	}
	PG_END_TRY();
	margin = Min(REFRESH_MARGIN_MAX_S, expires_in / 10);
	t->len = strlen(token);
	t->token = malloc(t->len + 1);
	if (t->token == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	memcpy(t->token, token, t->len + 1);
	SecretScrub(token, t->len);
	t->refresh_at = GetCurrentTimestamp() + (expires_in - margin) * USECS_PER_SEC;
}

/* Fetch with HTTP Basic client_id:client_secret, whose copy is scrubbed whatever happens. */
static void
FetchWithCredentials(KeptToken *t, const char *token_url, const char *client_id, const char *client_secret)
{
	char	   *userpwd = psprintf("%s:%s", client_id, client_secret);

	PG_TRY();
	{
		Fetch(t, token_url, userpwd);
	}
	PG_FINALLY();
	{
		SecretScrub(userpwd, strlen(userpwd));
	}
	PG_END_TRY();
}

char *
OauthTokenGet(const char *destination, const char *token_url,
			  const char *client_id, size_t client_id_len,
			  const char *client_secret, size_t client_secret_len, size_t *len)
{
	uint8_t		digest[SHA256_LEN];
	KeptToken  *t = Find(destination);
	char	   *copy;

	CredentialDigest(client_id, client_id_len, client_secret, client_secret_len, digest);
	if (t != NULL && (t->token == NULL || !ct_equal(t->credentials, digest, SHA256_LEN) ||
					  GetCurrentTimestamp() >= t->refresh_at))
	{
		Drop(t);
		t = NULL;
	}
	if (t == NULL)
	{
		t = Slot();
		FetchWithCredentials(t, token_url, client_id, client_secret);
		t->destination = strdup(destination);
		if (t->destination == NULL)
		{
			Drop(t);
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
		memcpy(t->credentials, digest, SHA256_LEN);
	}
	copy = palloc(t->len + 1);
	memcpy(copy, t->token, t->len + 1);
	*len = t->len;
	return copy;
}

bool
OauthTokenForget(const char *destination)
{
	KeptToken  *t = Find(destination);

	/*
	 * true also when the token is gone already: the other requests that
	 * left with it are refused too, and each deserves its second attempt
	 */
	if (t == NULL)
		return false;
	DropToken(t);
	return true;
}
