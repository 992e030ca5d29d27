/*
 * http_fetch.c — one request sent and waited for, in the calling process
 * (http_fetch.h).
 *
 * libcurl's multi interface, polled in slices of 100 ms so that a cancel
 * or a shutdown request is seen while the answer is awaited; the handles
 * are released whatever ends the wait.  Sent under the rules every
 * outbound request of pay follows (http_guard.c).
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"

#include "dispatcher.h"
#include "http_fetch.h"
#include "http_guard.h"

#define POLL_SLICE_MS 100

typedef struct FetchState
{
	char	   *body;			/* malloc'd: curl's callbacks must not raise */
	size_t		len;
	size_t		max;
	bool		too_large;
	HttpGuard	guard;
} FetchState;

static size_t
WriteBody(char *data, size_t size, size_t nmemb, void *userdata)
{
	FetchState *s = (FetchState *) userdata;
	size_t		n = size * nmemb;
	char	   *grown;

	if (s->len + n > s->max)
	{
		s->too_large = true;
		return 0;
	}
	grown = realloc(s->body, s->len + n + 1);
	if (grown == NULL)
		return 0;
	s->body = grown;
	memcpy(s->body + s->len, data, n);
	s->len += n;
	s->body[s->len] = '\0';
	return n;
}

/* Configure e for req; CURLE_OK or the first option curl refused. */
static CURLcode
Configure(CURL *e, const HttpFetchRequest *req, struct curl_slist *headers, FetchState *s, char *errbuf)
{
	CURLcode	rc = CURLE_OK;

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	rc = HttpGuardApply(e, &s->guard, req->https_only ? "https" : "http,https", (curl_off_t) req->body_max);
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_USERAGENT, "pay/0.3");
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_WRITEFUNCTION, WriteBody);
	SET(CURLOPT_WRITEDATA, s);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	if (req->userpwd != NULL)
	{
		SET(CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		SET(CURLOPT_USERPWD, req->userpwd);
	}
	if (strcmp(req->method, "GET") == 0)
		SET(CURLOPT_HTTPGET, 1L);
	else
	{
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (req->body ? strlen(req->body) : 0));
		SET(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
	}
#undef SET
	return rc;
}

/* Drive the transfer to its end; the CURLcode it ended with. */
static CURLcode
Wait(CURLM *multi)
{
	for (;;)
	{
		int			running = 0;
		int			queued;
		CURLMsg    *msg;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			return CURLE_FAILED_INIT;
		while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
			if (msg->msg == CURLMSG_DONE)
				return msg->data.result;
		if (running == 0)
			return CURLE_FAILED_INIT;
		if (curl_multi_poll(multi, NULL, 0, POLL_SLICE_MS, NULL) != CURLM_OK)
			return CURLE_FAILED_INIT;
		CHECK_FOR_INTERRUPTS();
	}
}

bool
HttpFetch(const HttpFetchRequest *req, HttpFetchResult *res)
{
	CURLM	   *volatile multi = curl_multi_init();
	CURL	   *volatile e = curl_easy_init();
	struct curl_slist *volatile headers = NULL;
	FetchState *volatile s = calloc(1, sizeof(FetchState));
	char		errbuf[CURL_ERROR_SIZE] = "";
	volatile bool ok = false;

	memset(res, 0, sizeof(*res));
	if (multi == NULL || e == NULL || s == NULL)
	{
		snprintf(res->error, sizeof(res->error), "out of memory for a request");
		goto done;
	}
	s->max = req->body_max;
	for (int i = 0; i < req->nheaders; i++)
		headers = curl_slist_append(headers, req->headers[i]);
	headers = curl_slist_append(headers, "Expect:");
	PG_TRY();
	{
		CURLcode	rc = Configure(e, req, headers, s, errbuf);

		if (rc == CURLE_OK && curl_multi_add_handle(multi, e) == CURLM_OK)
			rc = Wait(multi);
		else if (rc == CURLE_OK)
			rc = CURLE_FAILED_INIT;
		if (rc == CURLE_OK)
		{
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res->status);
			res->body = palloc(s->len + 1);
			if (s->len > 0)
				memcpy(res->body, s->body, s->len);
			res->body[s->len] = '\0';
			res->body_len = s->len;
			ok = true;
		}
		else
			snprintf(res->error, sizeof(res->error), "%s",
					 s->guard.refused[0] ? s->guard.refused : s->too_large ? "the answer is too large" :
					 errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	PG_FINALLY();
	{
		/* the Basic credentials in curl's copy of the options go with the handle */
		if (e != NULL)
		{
			curl_multi_remove_handle(multi, e);
			curl_easy_cleanup(e);
		}
		curl_multi_cleanup(multi);
		curl_slist_free_all(headers);
		/* an answer may carry a credential (an access token): wiped before it is freed */
		if (s != NULL && s->body != NULL)
		{
			explicit_bzero(s->body, s->len);
			free(s->body);
		}
		free(s);
	}
	PG_END_TRY();
	return ok;

done:
	if (e != NULL)
		curl_easy_cleanup(e);
	if (multi != NULL)
		curl_multi_cleanup(multi);
	free(s);
	return false;
}
