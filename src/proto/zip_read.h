/*
 * zip_read.h — one member of a zip archive, read out of memory.  Plain C
 * (zlib for deflate, crc32.c for the check).
 *
 * Alipay serves its bill as a zip archive holding the 业务明细 (detail) CSV
 * and a 汇总 (summary) CSV.  The archive comes from the network, so the
 * reader trusts nothing in it: offsets and sizes are checked against the
 * buffer, the central directory is the index (as unzip reads it), the
 * member's declared size is bounded before anything is allocated, a
 * declared size far above the compressed one (a "zip bomb") is refused,
 * inflate never writes past the declared size, and the CRC-32 must match.
 * Only what a bill needs is supported: stored and deflated members, one
 * disk, no encryption, no zip64.
 */
#ifndef PAY_ZIP_READ_H
#define PAY_ZIP_READ_H

#include <stddef.h>
#include <stdint.h>

typedef enum
{
	ZIP_OK = 0,
	ZIP_ERR_FORMAT,				/* not a zip archive, or one this reader refuses */
	ZIP_ERR_TRUNCATED,			/* a header or member data runs past the end */
	ZIP_ERR_TOO_MANY,			/* more members than limits.max_members */
	ZIP_ERR_TOO_LARGE,			/* the member is above limits.max_size */
	ZIP_ERR_RATIO,				/* declared size / compressed size above limits.max_ratio */
	ZIP_ERR_METHOD,				/* encrypted, or neither stored nor deflated */
	ZIP_ERR_DATA,				/* the deflate stream is corrupt or not the declared size */
	ZIP_ERR_CRC,				/* the CRC-32 is not the declared one */
	ZIP_ERR_NOT_FOUND,			/* no member's name matches */
	ZIP_ERR_AMBIGUOUS,			/* more than one member's name matches */
	ZIP_ERR_NOMEM
} zip_status;

/* A byte string a member name is searched for (names are GBK or UTF-8). */
typedef struct
{
	const uint8_t *bytes;
	size_t		len;
} zip_needle;

/* What a member name must (any of want) and must not (none of avoid) contain. */
typedef struct
{
	const zip_needle *want;
	int			nwant;
	const zip_needle *avoid;
	int			navoid;
} zip_match;

typedef struct
{
	size_t		max_size;		/* largest uncompressed member */
	uint32_t	max_ratio;		/* largest uncompressed / compressed size */
	uint32_t	max_members;	/* most entries in the central directory */
} zip_limits;

/*
 * The content of the single member whose name matches, into *out (malloc'd,
 * *out_len bytes; the caller frees it).  On any other status *out is NULL.
 */
extern zip_status zip_read_member(const uint8_t *zip, size_t len, const zip_match *match,
								  const zip_limits *limits, uint8_t **out, size_t *out_len);

/* A short English description of a status, for error messages. */
extern const char *zip_status_text(zip_status status);

#endif							/* PAY_ZIP_READ_H */
