/*
 * fuzz_alipay_response.c — the scanner of synchronous Alipay answers and its
 * JSON string unescaping (proto/alipay_response.c), and the notify_time
 * shape check of asynchronous notifies (proto/alipay_notify.c).
 *
 * Properties: reported spans lie inside the input, the sign span sits between
 * quotes, the *_response span is itself a JSON value (a body made around it
 * scans too), and unescaping never writes more than it reads.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alipay_notify.h"
#include "alipay_response.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *) data;
	AlipayResponse resp,
				again;
	char	   *buf = malloc(size + 1);
	size_t		n = 0;

	/* a notify_time shape is exactly 19 bytes of the pattern (src/proto/alipay_notify.c) */
	if (alipay_notify_time_well_formed(body, size))
		CHECK(size == ALIPAY_NOTIFY_TIME_LEN && body[4] == '-' && body[10] == ' ' && body[16] == ':');

	/* unescaping arbitrary bytes: at most size bytes out (ASan checks the buffer) */
	if (alipay_json_unescape(body, size, buf, &n) == 0)
		CHECK(n <= size);

	if (alipay_response_scan(body, size, &resp) == ALIPAY_RESPONSE_OK)
	{
		static const char head[] = "{\"a_response\":";
		static const char tail[] = ",\"sign\":\"\"}";
		size_t		wrapped_len = sizeof(head) - 1 + resp.content_len + sizeof(tail) - 1;
		char	   *wrapped = malloc(wrapped_len);

		CHECK(resp.content_off + resp.content_len <= size && resp.content_len > 0);
		CHECK(resp.sign_off >= 1 && resp.sign_off + resp.sign_len < size);
		CHECK(body[resp.sign_off - 1] == '"' && body[resp.sign_off + resp.sign_len] == '"');
		if (alipay_json_unescape(body + resp.sign_off, resp.sign_len, buf, &n) == 0)
			CHECK(n <= resp.sign_len);

		memcpy(wrapped, head, sizeof(head) - 1);
		memcpy(wrapped + sizeof(head) - 1, body + resp.content_off, resp.content_len);
		memcpy(wrapped + sizeof(head) - 1 + resp.content_len, tail, sizeof(tail) - 1);
		CHECK(alipay_response_scan(wrapped, wrapped_len, &again) == ALIPAY_RESPONSE_OK);
		CHECK(again.content_len == resp.content_len &&
			  memcmp(wrapped + again.content_off, body + resp.content_off, resp.content_len) == 0);
		free(wrapped);
	}
	free(buf);
	return 0;
}
