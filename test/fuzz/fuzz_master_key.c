/*
 * fuzz_master_key.c — the key file parser of the secret store
 * (src/crypto/master_key.c).  Asserts: a blank file and only a blank file is
 * rejected; the key material is the input minus surrounding whitespace; a
 * raw key is exactly 64 hex digits and decodes to the bytes they spell.
 */
#include <assert.h>
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "master_key.h"

/* The whitespace master_key_parse trims. */
static int
IsSpace(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Value of a hex digit, or -1. */
static int
Nibble(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (uint8_t) tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *) data;
	MasterKeyKind kind;
	size_t		start = 0;
	size_t		len = 0;
	size_t		i;
	int			blank = 1;
	int			all_hex;
	uint8_t		key[MASTER_KEY_LEN];

	if (size > MASTER_KEY_FILE_MAX)
		return 0;
	for (i = 0; i < size; i++)
		if (!IsSpace(data[i]))
			blank = 0;
	if (master_key_parse(buf, size, &kind, &start, &len) != 0)
	{
		assert(blank);
		return 0;
	}
	assert(!blank);
	assert(len > 0 && start + len <= size);
	assert(!IsSpace(data[start]) && !IsSpace(data[start + len - 1]));
	for (i = 0; i < start; i++)
		assert(IsSpace(data[i]));
	for (i = start + len; i < size; i++)
		assert(IsSpace(data[i]));

	all_hex = 1;
	for (i = start; i < start + len; i++)
		if (Nibble(data[i]) < 0)
			all_hex = 0;
	assert((kind == MASTER_KEY_RAW) == (len == 2 * MASTER_KEY_LEN && all_hex));
	if (len == 2 * MASTER_KEY_LEN)
	{
		int			rc = master_key_from_hex(buf + start, len, key);

		assert((rc == 0) == all_hex);
		if (rc == 0)
			for (i = 0; i < MASTER_KEY_LEN; i++)
				assert(key[i] == (Nibble(data[start + 2 * i]) << 4 | Nibble(data[start + 2 * i + 1])));
	}
	else
		assert(master_key_from_hex(buf + start, len, key) == -1);
	return 0;
}
