/*
 * statement_zip.c — pay._zip_member(content, name_part, name_not): the one
 * member of a zip archive whose name contains name_part and not name_not,
 * for Alipay's bill (a zip of the 业务明细 CSV and its 汇总 summary).  The
 * reader is src/proto/zip_read.c; here the names looked for are given in
 * both encodings a member name may be in (GBK, as Alipay writes them, and
 * UTF-8), and the limits are set.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "pay.h"
#include "zip_read.h"

PG_FUNCTION_INFO_V1(pay_zip_member);

/* A bill is CSV: it compresses some 10 to 30 times, never hundreds. */
#define ZIP_MEMBER_MAX		((size_t) 256 * 1024 * 1024)
#define ZIP_RATIO_MAX		200
#define ZIP_MEMBERS_MAX		16

/* The text as UTF-8 and as GBK bytes (two needles). */
static void
Needles(text *t, zip_needle *out)
{
	char	   *s = text_to_cstring(t);
	int			len = (int) strlen(s);
	char	   *utf8 = pg_server_to_any(s, len, PG_UTF8);
	char	   *gbk = pg_server_to_any(s, len, PG_GBK);

	out[0].bytes = (const uint8_t *) utf8;
	out[0].len = strlen(utf8);
	out[1].bytes = (const uint8_t *) gbk;
	out[1].len = strlen(gbk);
}

static int
ZipErrcode(zip_status st)
{
	switch (st)
	{
		case ZIP_ERR_TOO_MANY:
		case ZIP_ERR_TOO_LARGE:
		case ZIP_ERR_RATIO:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case ZIP_ERR_METHOD:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		case ZIP_ERR_NOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		default:
			return ERRCODE_INVALID_TEXT_REPRESENTATION;
	}
}

Datum
pay_zip_member(PG_FUNCTION_ARGS)
{
	bytea	   *content;
	zip_needle	want[2];
	zip_needle	avoid[2];
	zip_match	match = {want, 2, avoid, 0};
	zip_limits	limits = {ZIP_MEMBER_MAX, ZIP_RATIO_MAX, ZIP_MEMBERS_MAX};
	uint8_t    *member;
	size_t		member_len;
	zip_status	st;
	bytea	   *result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	content = PG_GETARG_BYTEA_PP(0);
	Needles(PG_GETARG_TEXT_PP(1), want);
	if (!PG_ARGISNULL(2))
	{
		Needles(PG_GETARG_TEXT_PP(2), avoid);
		match.navoid = 2;
	}
	st = zip_read_member((const uint8_t *) VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content),
						 &match, &limits, &member, &member_len);
	if (st != ZIP_OK)
		ereport(ERROR, (errcode(ZipErrcode(st)), errmsg("content: %s", zip_status_text(st))));
	/* member is malloc'd: copy it out before anything can raise */
	result = (bytea *) palloc_extended(VARHDRSZ + member_len, MCXT_ALLOC_NO_OOM);
	if (result != NULL)
	{
		SET_VARSIZE(result, VARHDRSZ + member_len);
		memcpy(VARDATA(result), member, member_len);
	}
	free(member);
	if (result == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	PG_RETURN_BYTEA_P(result);
}
