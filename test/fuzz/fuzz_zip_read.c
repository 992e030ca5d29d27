/*
 * fuzz_zip_read.c — libFuzzer harness for proto/zip_read.c: any input is
 * read without reading out of bounds (an exact-size copy, so ASan sees a
 * read past the end), a member is returned only when it is within the
 * limits, and its bytes are the declared size (ASan sees a short buffer).
 * The first byte picks the names looked for, so both a found member and
 * the "ambiguous" and "not found" paths are reached.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zip_read.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 业务明细 in UTF-8 and GBK; or any .csv */
	static const zip_needle want[] = {{(const uint8_t *) "\xe4\xb8\x9a\xe5\x8a\xa1\xe6\x98\x8e\xe7\xbb\x86", 12},
	{(const uint8_t *) "\xd2\xb5\xce\xf1\xc3\xf7\xcf\xb8", 8}, {(const uint8_t *) ".csv", 4}};
	/* 汇总 in UTF-8 and GBK */
	static const zip_needle avoid[] = {{(const uint8_t *) "\xe6\xb1\x87\xe6\x80\xbb", 6},
	{(const uint8_t *) "\xbb\xe3\xd7\xdc", 4}};
	zip_match	match = {want, 2, avoid, 2};
	zip_limits	limits = {1 << 20, 100, 8};
	uint8_t    *copy;
	uint8_t    *out;
	size_t		out_len;
	zip_status	st;

	if (size == 0)
		return 0;
	if (data[0] & 1)
	{
		match.want = &want[2];
		match.nwant = 1;
	}
	if (data[0] & 2)
		match.navoid = 0;
	copy = malloc(size - 1 ? size - 1 : 1);
	memcpy(copy, data + 1, size - 1);
	st = zip_read_member(copy, size - 1, &match, &limits, &out, &out_len);
	if (st == ZIP_OK)
	{
		volatile uint8_t sink = 0;

		if (out == NULL || out_len > limits.max_size)
			abort();
		if (out_len > 0)
			sink ^= out[0] ^ out[out_len - 1];
		(void) sink;
		free(out);
	}
	else if (out != NULL || zip_status_text(st) == NULL)
		abort();
	free(copy);
	return 0;
}
