/*
 * wechatpay_auth.c — parse and format WeChat Pay's Authorization header.
 * A strict subset of RFC 9110's credentials grammar: one scheme, then
 * name=value pairs separated by commas.
 */
#include "wechatpay_auth.h"

#include <string.h>

const char *const wechatpay_auth_names[WECHATPAY_NFIELDS] = {
	"mchid", "nonce_str", "signature", "timestamp", "serial_no"
};

/* 1 for SP and HTAB (RFC 9110 OWS). */
static int
IsOws(char c)
{
	return c == ' ' || c == '\t';
}

/* 1 for a tchar of RFC 9110 section 5.6.2. */
static int
IsTchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		(c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Case-insensitive ASCII comparison of [s, s + len) with the NUL-terminated word. */
static int
EqualsIgnoreCase(const char *s, size_t len, const char *word)
{
	size_t		i;

	if (strlen(word) != len)
		return 0;
	for (i = 0; i < len; i++)
	{
		char		a = s[i],
					b = word[i];

		if (a >= 'A' && a <= 'Z')
			a = (char) (a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char) (b - 'A' + 'a');
		if (a != b)
			return 0;
	}
	return 1;
}

int
wechatpay_auth_value_ok(WechatpayAuthField f, const char *value, size_t len)
{
	size_t		i;

	if (len == 0 || len > WECHATPAY_AUTH_VALUE_MAX)
		return 0;
	if (f == WECHATPAY_TIMESTAMP && len > 19)
		return 0;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) value[i];

		if (f == WECHATPAY_TIMESTAMP ? !(c >= '0' && c <= '9')
			: (c <= 0x20 || c >= 0x7F || c == '"' || c == '\\'))
			return 0;
	}
	return 1;
}

int
wechatpay_auth_parse(const char *header, size_t len, WechatpayAuth *out)
{
	size_t		scheme_len = strlen(WECHATPAY_AUTH_SCHEME);
	size_t		p = 0;
	int			f;

	memset(out, 0, sizeof(*out));
	if (len > WECHATPAY_AUTH_HEADER_MAX)
		return -1;
	while (p < len && IsOws(header[p]))
		p++;
	if (len - p <= scheme_len || !EqualsIgnoreCase(header + p, scheme_len, WECHATPAY_AUTH_SCHEME) ||
		header[p + scheme_len] != ' ')
		return -1;
	p += scheme_len;

	for (;;)
	{
		size_t		name = 0,
					name_len,
					value,
					value_len;
		int			field = -1;

		while (p < len && IsOws(header[p]))
			p++;
		name = p;
		while (p < len && IsTchar(header[p]) && header[p] != '=')
			p++;
		name_len = p - name;
		while (p < len && IsOws(header[p]))
			p++;
		if (name_len == 0 || p >= len || header[p] != '=')
			return -1;
		p++;
		while (p < len && IsOws(header[p]))
			p++;
		if (p < len && header[p] == '"')
		{
			value = ++p;
			while (p < len && header[p] != '"')
				p++;
			if (p >= len)
				return -1;
			value_len = p - value;
			p++;
		}
		else
		{
			value = p;
			while (p < len && IsTchar(header[p]))
				p++;
			value_len = p - value;
		}

		for (f = 0; f < WECHATPAY_NFIELDS; f++)
			if (EqualsIgnoreCase(header + name, name_len, wechatpay_auth_names[f]))
				field = f;
		if (field >= 0)
		{
			if (out->value[field] != NULL ||
				!wechatpay_auth_value_ok((WechatpayAuthField) field, header + value, value_len))
				return -1;
			out->value[field] = header + value;
			out->len[field] = value_len;
		}
		else
		{
			size_t		i;

			for (i = 0; i < value_len; i++)	/* unknown: ignored, but still no control bytes */
				if ((unsigned char) header[value + i] < 0x20 || header[value + i] == 0x7F ||
					header[value + i] == '\\')
					return -1;
		}

		while (p < len && IsOws(header[p]))
			p++;
		if (p == len)
			break;
		if (header[p] != ',')
			return -1;
		p++;
	}

	for (f = 0; f < WECHATPAY_NFIELDS; f++)
		if (out->value[f] == NULL)
			return -1;
	return 0;
}

size_t
wechatpay_auth_format(const WechatpayAuth *auth, char *out, size_t out_cap)
{
	size_t		need = strlen(WECHATPAY_AUTH_SCHEME) + 1;
	size_t		n;
	int			f;

	for (f = 0; f < WECHATPAY_NFIELDS; f++)
	{
		if (auth->value[f] == NULL ||
			!wechatpay_auth_value_ok((WechatpayAuthField) f, auth->value[f], auth->len[f]))
			return 0;
		need += (f > 0) + strlen(wechatpay_auth_names[f]) + 3 + auth->len[f];	/* ,name="value" */
	}
	if (out == NULL || out_cap <= need)
		return need;

	n = strlen(WECHATPAY_AUTH_SCHEME);
	memcpy(out, WECHATPAY_AUTH_SCHEME, n);
	out[n++] = ' ';
	for (f = 0; f < WECHATPAY_NFIELDS; f++)
	{
		size_t		k = strlen(wechatpay_auth_names[f]);

		if (f > 0)
			out[n++] = ',';
		memcpy(out + n, wechatpay_auth_names[f], k);
		n += k;
		out[n++] = '=';
		out[n++] = '"';
		memcpy(out + n, auth->value[f], auth->len[f]);
		n += auth->len[f];
		out[n++] = '"';
	}
	out[n] = '\0';
	return n;
}

int
wechatpay_method_ok(const char *method, size_t len)
{
	size_t		i;

	if (len == 0 || len > 32)
		return 0;
	for (i = 0; i < len; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			return 0;
	return 1;
}

int
wechatpay_url_ok(const char *url, size_t len)
{
	size_t		i;

	if (len == 0 || url[0] != '/')
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char) url[i] <= 0x20 || url[i] == 0x7F)
			return 0;
	return 1;
}
