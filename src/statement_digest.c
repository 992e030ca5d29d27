/*
 * statement_digest.c — pay._sha1_hex(bytea): the SHA-1 of a downloaded
 * statement file as lower-case hex, to compare with the digest the PSP's
 * API answer named (WeChat Pay's tradebill).  The digest is src/crypto/digest.c.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "digest.h"
#include "pay.h"

PG_FUNCTION_INFO_V1(pay_sha1_hex);

Datum
pay_sha1_hex(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	uint8_t		md[SHA1_LEN];
	char		out[SHA1_LEN * 2 + 1];

	if (sha1((const uint8_t *) VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), md) != 0)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("SHA-1 failed")));
	/* (utils/builtins.h declares its own hex_encode: the loop is shorter than the workaround) */
	for (int i = 0; i < SHA1_LEN; i++)
	{
		out[2 * i] = "0123456789abcdef"[md[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	out[SHA1_LEN * 2] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(out));
}
