/*
 * crc32.c — table-driven CRC-32 (reflected polynomial 0xEDB88320).  Named
 * crc32_ieee so that it never collides with zlib's crc32, which libcurl
 * brings into the same process.
 */
#include "crc32.h"

static uint32_t crc_table[256];
static int	crc_table_ready;

/* Fill the byte-at-a-time table once. */
static void
Crc32TableInit(void)
{
	uint32_t	i;

	for (i = 0; i < 256; i++)
	{
		uint32_t	c = i;
		int			k;

		for (k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	crc_table_ready = 1;
}

uint32_t
crc32_ieee(uint32_t crc, const uint8_t *buf, size_t len)
{
	size_t		i;

	if (!crc_table_ready)
		Crc32TableInit();
	crc = ~crc;
	for (i = 0; i < len; i++)
		crc = crc_table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
	return ~crc;
}
