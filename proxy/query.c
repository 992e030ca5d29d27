/* query.c — a request's query parameters as one JSON object of strings */
#include "query.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_MAX 32			/* far more than any route takes */

typedef struct Param
{
	const char *name;
	size_t		name_len;
	const char *value;
	size_t		value_len;
} Param;

typedef struct ParamList
{
	Param		items[QUERY_MAX];
	int			count;
	bool		overflow;
} ParamList;

/* MHD iterator: remember one parameter (pointers stay valid for the request) */
static enum MHD_Result
CollectParam(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
			 const char *value, size_t value_size)
{
	ParamList  *list = cls;
	Param	   *p;

	(void) kind;
	if (list->count >= QUERY_MAX)
	{
		list->overflow = true;
		return MHD_NO;
	}
	p = &list->items[list->count++];
	p->name = key;
	p->name_len = key_size;
	p->value = value ? value : "";
	p->value_len = value ? value_size : 0;
	return MHD_YES;
}

/* Append the query parameters as a JSON object (see query.h) */
const char *
QueryToJson(struct MHD_Connection *connection, JsonBuf *out)
{
	ParamList  *list = calloc(1, sizeof(ParamList));
	const char *problem = NULL;

	if (list == NULL)
		return "out of memory";
	MHD_get_connection_values_n(connection, MHD_GET_ARGUMENT_KIND, CollectParam, list);
	if (list->overflow)
		problem = "too many query parameters";
	JsonBufAppend(out, "{", 1);
	for (int i = 0; i < list->count && problem == NULL; i++)
	{
		Param	   *p = &list->items[i];

		/* one value per name: which of two would the signature have covered? */
		for (int j = 0; j < i && problem == NULL; j++)
			if (list->items[j].name_len == p->name_len && memcmp(list->items[j].name, p->name, p->name_len) == 0)
				problem = "a query parameter is repeated";
		if (problem != NULL)
			break;
		if (i > 0)
			JsonBufAppend(out, ",", 1);
		if (!JsonBufAppendString(out, p->name, p->name_len))
			problem = "query parameters are not valid UTF-8 text";
		JsonBufAppend(out, ":", 1);
		if (problem == NULL && !JsonBufAppendString(out, p->value, p->value_len))
			problem = "query parameters are not valid UTF-8 text";
	}
	JsonBufAppend(out, "}", 1);
	if (problem == NULL && out->failed)
		problem = "the query is too large";
	free(list);
	return problem;
}
