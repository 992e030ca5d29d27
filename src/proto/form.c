/*
 * form.c — application/x-www-form-urlencoded parsing (Alipay's async
 * notifies, merchant notifications).  Bytes are decoded exactly; deciding
 * whether they are valid text is the caller's business.
 */
#include "form.h"
#include "hex.h"

#include <string.h>

long
form_decode(const char *in, size_t len, char *out)
{
	size_t		i;
	long		n = 0;

	for (i = 0; i < len; i++)
	{
		if (in[i] == '+')
			out[n++] = ' ';
		else if (in[i] == '%')
		{
			int			hi,
						lo;

			if (len - i < 3)
				return -1;		/* a '%' needs two hex digits after it */
			hi = hex_digit_value(in[i + 1]);
			lo = hex_digit_value(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			out[n++] = (char) (hi << 4 | lo);
			i += 2;
		}
		else
			out[n++] = in[i];
	}
	return n;
}

int
form_parse(const char *body, size_t len, char *scratch, form_pair_fn fn, void *arg)
{
	size_t		start = 0;

	while (start < len)
	{
		const char *part = body + start;
		const char *amp = memchr(part, '&', len - start);
		size_t		part_len = amp ? (size_t) (amp - part) : len - start;
		const char *eq = memchr(part, '=', part_len);
		size_t		name_len = eq ? (size_t) (eq - part) : part_len;
		long		name_n,
					value_n = 0;
		int			rc;

		start += part_len + 1;
		if (part_len == 0)
			continue;
		/* name and value decode into disjoint halves of scratch */
		name_n = form_decode(part, name_len, scratch);
		if (name_n < 0)
			return -1;
		if (eq)
		{
			value_n = form_decode(eq + 1, part_len - name_len - 1, scratch + name_n);
			if (value_n < 0)
				return -1;
		}
		rc = fn(arg, scratch, (size_t) name_n, scratch + name_n, (size_t) value_n);
		if (rc != 0)
			return rc;
	}
	return 0;
}
