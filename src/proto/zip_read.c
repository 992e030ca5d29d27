/*
 * zip_read.c — see zip_read.h.  Layout from PKWARE's APPNOTE.TXT: the end
 * of central directory record (EOCD) at the end of the archive points to
 * the central directory, whose entries point to each member's local header,
 * which is followed by the member's data.  All integers are little-endian.
 */
#include "zip_read.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "crc32.h"

#define EOCD_SIG		0x06054b50u
#define CENTRAL_SIG		0x02014b50u
#define LOCAL_SIG		0x04034b50u
#define EOCD_LEN		22
#define CENTRAL_LEN		46
#define LOCAL_LEN		30
#define MAX_COMMENT		0xFFFF
#define FLAG_ENCRYPTED	0x0001
#define METHOD_STORED	0
#define METHOD_DEFLATED 8

/* One central directory entry: what reading the member needs. */
typedef struct
{
	uint16_t	flags;
	uint16_t	method;
	uint32_t	crc;
	uint32_t	csize;
	uint32_t	usize;
	uint32_t	local_offset;
} zip_entry;

static uint16_t
Le16(const uint8_t *p)
{
	return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t
Le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

/* Does hay (n bytes) contain the needle?  (memmem is not standard C.) */
static int
Contains(const uint8_t *hay, size_t n, const zip_needle *needle)
{
	size_t		i;

	if (needle->len == 0)
		return 1;
	for (i = 0; i + needle->len <= n; i++)
		if (memcmp(hay + i, needle->bytes, needle->len) == 0)
			return 1;
	return 0;
}

static int
NameMatches(const uint8_t *name, size_t n, const zip_match *m)
{
	int			i;
	int			wanted = 0;

	for (i = 0; i < m->nwant && !wanted; i++)
		wanted = Contains(name, n, &m->want[i]);
	for (i = 0; i < m->navoid && wanted; i++)
		if (Contains(name, n, &m->avoid[i]))
			wanted = 0;
	return wanted;
}

/*
 * The EOCD's offset: the last signature that can start a record reaching
 * exactly the end of the buffer with its comment (searched backwards over
 * at most the largest comment).
 */
static zip_status
FindEocd(const uint8_t *zip, size_t len, size_t *at)
{
	size_t		i;
	size_t		lowest;

	if (len < EOCD_LEN)
		return ZIP_ERR_FORMAT;
	lowest = len - EOCD_LEN > MAX_COMMENT ? len - EOCD_LEN - MAX_COMMENT : 0;
	for (i = len - EOCD_LEN + 1; i-- > lowest;)
		if (Le32(zip + i) == EOCD_SIG && i + EOCD_LEN + Le16(zip + i + 20) == len)
		{
			*at = i;
			return ZIP_OK;
		}
	return ZIP_ERR_FORMAT;
}

/*
 * Walk the central directory ([cd, cd + cd_size), count entries) and pick
 * the single entry whose name matches.
 */
static zip_status
FindEntry(const uint8_t *zip, size_t cd, size_t cd_size, uint32_t count,
		  const zip_match *match, zip_entry *found)
{
	size_t		p = cd;
	size_t		end = cd + cd_size;
	uint32_t	i;
	int			nfound = 0;

	for (i = 0; i < count; i++)
	{
		size_t		name_len, entry_len;

		if (end - p < CENTRAL_LEN)
			return ZIP_ERR_TRUNCATED;
		if (Le32(zip + p) != CENTRAL_SIG)
			return ZIP_ERR_FORMAT;
		name_len = Le16(zip + p + 28);
		entry_len = CENTRAL_LEN + name_len + Le16(zip + p + 30) + Le16(zip + p + 32);
		if (end - p < entry_len)
			return ZIP_ERR_TRUNCATED;
		if (NameMatches(zip + p + CENTRAL_LEN, name_len, match))
		{
			if (++nfound > 1)
				return ZIP_ERR_AMBIGUOUS;
			found->flags = Le16(zip + p + 8);
			found->method = Le16(zip + p + 10);
			found->crc = Le32(zip + p + 16);
			found->csize = Le32(zip + p + 20);
			found->usize = Le32(zip + p + 24);
			found->local_offset = Le32(zip + p + 42);
		}
		p += entry_len;
	}
	return nfound ? ZIP_OK : ZIP_ERR_NOT_FOUND;
}

/* Refuse what this reader does not open, or what would cost too much. */
static zip_status
CheckEntry(const zip_entry *e, const zip_limits *lim)
{
	if (e->flags & FLAG_ENCRYPTED)
		return ZIP_ERR_METHOD;
	if (e->method != METHOD_STORED && e->method != METHOD_DEFLATED)
		return ZIP_ERR_METHOD;
	/* 0xFFFFFFFF: the real sizes are in a zip64 extra field */
	if (e->csize == 0xFFFFFFFFu || e->usize == 0xFFFFFFFFu || e->local_offset == 0xFFFFFFFFu)
		return ZIP_ERR_FORMAT;
	if (e->usize > lim->max_size)
		return ZIP_ERR_TOO_LARGE;
	if (e->method == METHOD_STORED && e->csize != e->usize)
		return ZIP_ERR_FORMAT;
	if (e->usize > 0 && (e->csize == 0 || e->usize / e->csize >= lim->max_ratio))
		return ZIP_ERR_RATIO;
	return ZIP_OK;
}

/* Where the member's data starts: after its local header (name, extra). */
static zip_status
MemberData(const uint8_t *zip, size_t data_end, const zip_entry *e, size_t *at)
{
	size_t		p = e->local_offset;
	size_t		start;

	if (p > data_end || data_end - p < LOCAL_LEN)
		return ZIP_ERR_TRUNCATED;
	if (Le32(zip + p) != LOCAL_SIG)
		return ZIP_ERR_FORMAT;
	start = p + LOCAL_LEN + Le16(zip + p + 26) + Le16(zip + p + 28);
	if (start > data_end || data_end - start < e->csize)
		return ZIP_ERR_TRUNCATED;
	*at = start;
	return ZIP_OK;
}

/* Raw deflate (no zlib header) of exactly e->usize bytes into out. */
static zip_status
Inflate(const uint8_t *in, const zip_entry *e, uint8_t *out)
{
	z_stream	z;
	int			rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
		return ZIP_ERR_NOMEM;
	z.next_in = (Bytef *) in;
	z.avail_in = e->csize;
	z.next_out = out;
	z.avail_out = e->usize;
	rc = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	/* Z_STREAM_END with the buffer exactly full: no more and no less */
	if (rc != Z_STREAM_END || z.total_out != e->usize)
		return ZIP_ERR_DATA;
	return ZIP_OK;
}

zip_status
zip_read_member(const uint8_t *zip, size_t len, const zip_match *match,
				const zip_limits *limits, uint8_t **out, size_t *out_len)
{
	size_t		eocd, cd, cd_size, data;
	uint32_t	count;
	zip_entry	e = {0};
	uint8_t    *buf;
	zip_status	st;

	*out = NULL;
	*out_len = 0;
	if ((st = FindEocd(zip, len, &eocd)) != ZIP_OK)
		return st;
	/* one disk only: this disk 0, the directory's disk 0, all entries here */
	if (Le16(zip + eocd + 4) != 0 || Le16(zip + eocd + 6) != 0 ||
		Le16(zip + eocd + 8) != Le16(zip + eocd + 10))
		return ZIP_ERR_FORMAT;
	count = Le16(zip + eocd + 10);
	cd_size = Le32(zip + eocd + 12);
	cd = Le32(zip + eocd + 16);
	if (count > limits->max_members)
		return ZIP_ERR_TOO_MANY;
	if (cd > eocd || eocd - cd < cd_size)
		return ZIP_ERR_TRUNCATED;
	if ((st = FindEntry(zip, cd, cd_size, count, match, &e)) != ZIP_OK)
		return st;
	if ((st = CheckEntry(&e, limits)) != ZIP_OK)
		return st;
	/* member data lies before the central directory */
	if ((st = MemberData(zip, cd, &e, &data)) != ZIP_OK)
		return st;
	buf = malloc(e.usize ? e.usize : 1);
	if (buf == NULL)
		return ZIP_ERR_NOMEM;
	if (e.method == METHOD_STORED)
		memcpy(buf, zip + data, e.usize);
	else if ((st = Inflate(zip + data, &e, buf)) != ZIP_OK)
	{
		free(buf);
		return st;
	}
	if (crc32_ieee(0, buf, e.usize) != e.crc)
	{
		free(buf);
		return ZIP_ERR_CRC;
	}
	*out = buf;
	*out_len = e.usize;
	return ZIP_OK;
}

const char *
zip_status_text(zip_status status)
{
	switch (status)
	{
		case ZIP_OK:
			return "ok";
		case ZIP_ERR_FORMAT:
			return "not a zip archive this reader opens (one disk, no zip64)";
		case ZIP_ERR_TRUNCATED:
			return "the zip archive is truncated";
		case ZIP_ERR_TOO_MANY:
			return "the zip archive has too many members";
		case ZIP_ERR_TOO_LARGE:
			return "the member is too large";
		case ZIP_ERR_RATIO:
			return "the member's compression ratio is too high";
		case ZIP_ERR_METHOD:
			return "the member is encrypted or neither stored nor deflated";
		case ZIP_ERR_DATA:
			return "the member's compressed data is corrupt";
		case ZIP_ERR_CRC:
			return "the member's CRC-32 does not match";
		case ZIP_ERR_NOT_FOUND:
			return "no member of the zip archive has the name looked for";
		case ZIP_ERR_AMBIGUOUS:
			return "more than one member of the zip archive has the name looked for";
		case ZIP_ERR_NOMEM:
			return "out of memory";
	}
	return "unknown zip status";
}
