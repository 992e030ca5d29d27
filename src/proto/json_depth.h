/*
 * json_depth.h — how deeply a JSON text nests, found without parsing it.
 * Plain C.
 *
 * PostgreSQL's JSON parser and jsonb_in recurse once per level and stop
 * at max_stack_depth with an internal-looking error; a callback body is
 * measured first so that a deep one is refused as a bad callback.
 */
#ifndef PAY_JSON_DEPTH_H
#define PAY_JSON_DEPTH_H

#include <stddef.h>

/*
 * 1 if the text (len bytes) opens more than max arrays or objects at once,
 * counting the brackets outside strings; else 0.  Malformed text is the
 * parser's to refuse: an unterminated string or unbalanced brackets only
 * end the count.
 */
extern int	json_nesting_exceeds(const char *text, size_t len, int max);

#endif							/* PAY_JSON_DEPTH_H */
