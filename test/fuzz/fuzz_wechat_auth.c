/*
 * fuzz_wechat_auth.c — the WeChat Pay Authorization header parser and
 * formatter (proto/wechatpay_auth.c).
 *
 * Properties: a parsed header's fields point inside the input and are
 * acceptable values; formatting them and parsing the result gives the same
 * fields back; the method and url checks never crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wechatpay_auth.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *header = (const char *) data;
	WechatpayAuth auth,
				again;
	size_t		len;
	char	   *out;
	int			f;

	(void) wechatpay_method_ok(header, size);
	(void) wechatpay_url_ok(header, size);
	if (wechatpay_auth_parse(header, size, &auth) != 0)
		return 0;

	for (f = 0; f < WECHATPAY_NFIELDS; f++)
	{
		CHECK(auth.value[f] >= header && auth.value[f] + auth.len[f] <= header + size);
		CHECK(wechatpay_auth_value_ok((WechatpayAuthField) f, auth.value[f], auth.len[f]));
	}
	len = wechatpay_auth_format(&auth, NULL, 0);
	CHECK(len > 0);
	out = malloc(len + 1);
	CHECK(wechatpay_auth_format(&auth, out, len + 1) == len && strlen(out) == len);
	CHECK(wechatpay_auth_parse(out, len, &again) == 0);
	for (f = 0; f < WECHATPAY_NFIELDS; f++)
		CHECK(again.len[f] == auth.len[f] && memcmp(again.value[f], auth.value[f], auth.len[f]) == 0);
	free(out);
	return 0;
}
