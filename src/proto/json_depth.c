/*
 * json_depth.c — see json_depth.h.
 */
#include "json_depth.h"

int
json_nesting_exceeds(const char *text, size_t len, int max)
{
	int			depth = 0;
	int			in_string = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		c = text[i];

		if (in_string)
		{
			if (c == '\\')
				i++;			/* the escaped character cannot end the string */
			else if (c == '"')
				in_string = 0;
		}
		else if (c == '"')
			in_string = 1;
		else if (c == '[' || c == '{')
		{
			if (++depth > max)
				return 1;
		}
		else if ((c == ']' || c == '}') && depth > 0)
			depth--;
	}
	return 0;
}
