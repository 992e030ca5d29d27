/*
 * paypal_webhook.c — PayPal webhook header checks (paypal_webhook.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "paypal_webhook.h"

static const char *const paypal_hosts[] = {
	"api.paypal.com", "api.sandbox.paypal.com", "api-m.paypal.com", "api-m.sandbox.paypal.com",
};

#define CERT_PATH "/v1/notifications/certs/"

/* n digits at s into *out; false if any is not a digit. */
static bool
Digits(const char *s, int n, int *out)
{
	*out = 0;
	for (int i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		*out = *out * 10 + (s[i] - '0');
	}
	return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t
DaysFromCivil(int y, int m, int d)
{
	int64_t		era;
	int			yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (int) (y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

bool
paypal_transmission_time(const char *text, int64_t *unix_seconds)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y,
				mo,
				d,
				h,
				mi,
				s;
	size_t		len = text ? strlen(text) : 0;
	size_t		i = 19;

	if (len < 20 || !Digits(text, 4, &y) || text[4] != '-' || !Digits(text + 5, 2, &mo) || text[7] != '-' ||
		!Digits(text + 8, 2, &d) || text[10] != 'T' || !Digits(text + 11, 2, &h) || text[13] != ':' ||
		!Digits(text + 14, 2, &mi) || text[16] != ':' || !Digits(text + 17, 2, &s))
		return false;
	if (text[i] == '.')
	{
		/* fractional seconds: at least one digit, then dropped */
		if (i + 1 >= len || !isdigit((unsigned char) text[i + 1]))
			return false;
		for (i++; i < len && isdigit((unsigned char) text[i]); i++)
			;
	}
	if (i != len - 1 || text[i] != 'Z')
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
		(mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) ||
		h > 23 || mi > 59 || s > 60)
		return false;
	*unix_seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	return true;
}

/* Is host[:port] one entry of the comma-separated list? */
static bool
InList(const char *list, const char *host, const char *port)
{
	const char *p = list;

	while (p != NULL && *p != '\0')
	{
		const char *end = strchr(p, ',');
		size_t		n = end ? (size_t) (end - p) : strlen(p);
		char		entry[300];
		char	   *colon;
		char	   *e = entry;

		while (n > 0 && (*p == ' ' || *p == '\t'))
			p++, n--;
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0 && n < sizeof(entry))
		{
			memcpy(entry, p, n);
			entry[n] = '\0';
			colon = strrchr(e, ':');
			if (colon != NULL)
			{
				*colon = '\0';
				if (strcasecmp(e, host) == 0 && port != NULL && strcmp(colon + 1, port) == 0)
					return true;
			}
			else if (strcasecmp(e, host) == 0)
				return true;
		}
		p = end ? end + 1 : NULL;
	}
	return false;
}

bool
paypal_cert_url_allowed(const char *url, const char *extra_hosts, char *why, size_t why_size)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL,
			   *host = NULL,
			   *port = NULL,
			   *user = NULL,
			   *path = NULL;
	bool		ok = false;

	if (u == NULL)
	{
		snprintf(why, why_size, "out of memory");
		return false;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		snprintf(why, why_size, "PAYPAL-CERT-URL is not a URL");
	else if (strcasecmp(scheme, "https") != 0 || strncasecmp(url, "https://", 8) != 0)
		snprintf(why, why_size, "PAYPAL-CERT-URL is not https");
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_NO_USER)
		snprintf(why, why_size, "PAYPAL-CERT-URL carries user information");
	else if (strncmp(path, CERT_PATH, strlen(CERT_PATH)) != 0 || strstr(path, "..") != NULL)
		snprintf(why, why_size, "PAYPAL-CERT-URL is not under %s", CERT_PATH);
	else
	{
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		for (size_t i = 0; i < sizeof(paypal_hosts) / sizeof(paypal_hosts[0]); i++)
			if (strcasecmp(host, paypal_hosts[i]) == 0 && (port == NULL || strcmp(port, "443") == 0))
				ok = true;
		if (!ok && extra_hosts != NULL)
			ok = InList(extra_hosts, host, port);
		if (!ok)
			snprintf(why, why_size, "PAYPAL-CERT-URL host \"%.200s\" is not PayPal's", host);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_free(path);
	curl_url_cleanup(u);
	return ok;
}
