/*
 * callback.h — what the C modules of pay.handle_callback share
 * (callback_handle.c, callback_record.c, callback_event.c,
 * callback_apply.c, and each provider's parser in provider_<kind>.c).
 *
 * A provider's parser turns a verified callback into one normalised event,
 * a jsonb object whose members 85_callbacks.sql describes (event_id, nonce,
 * kind, order_ref, psp_txn_id, amount or amount_major, currency, refund_*,
 * type), or a batch of them, a JSON array (Adyen; callback_handle.c).
 * Every parser is C and raises the same errors with the same messages.
 */
#ifndef PAY_CALLBACK_H
#define PAY_CALLBACK_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/jsonb.h"

struct Provider;

/* The gateway a callback came to: a row of pay.gateways, and its kind's provider (provider.h). */
typedef struct CallbackGateway
{
	char	   *name;
	char	   *kind;
	Jsonb	   *options;
	const struct Provider *provider;
} CallbackGateway;

/* What happened to one callback: the columns of its pay.callbacks row. */
typedef struct Verdict
{
	const char *verdict;		/* accepted, duplicate, rejected, error */
	char	   *state;			/* SQLSTATE (or unknown_gateway) of a refusal */
	char	   *reason;
	Jsonb	   *event;			/* the parsed event, once there is one */
	int64		order_id;		/* 0: none */
	char	   *outcome;
} Verdict;

/* callback_handle.c: the gateway named provider, if its kind's provider takes callbacks (SPI) */
extern bool CallbackFindGateway(text *provider, CallbackGateway *g);

/*
 * callback_record.c: what pay.callbacks keeps of a callback (SPI).
 *
 * CallbackRecord inserts it as received, with at most
 * pay.callback_unverified_body_max bytes of its body (cut on a character
 * boundary; *cut says whether it was) and the body's full length;
 * CallbackRecordVerdict records the verdict, and whole_body when it is not
 * NULL (a verified callback whose body was cut); a callback to a gateway
 * that takes no callbacks is only counted, per day, by CallbackCountUnknown.
 */
extern int64 CallbackRecord(text *provider, Datum headers, text *body, bool *cut);
extern void CallbackRecordVerdict(int64 callback_id, const Verdict *v, int status, text *whole_body);
extern void CallbackCountUnknown(text *provider, int64 body_length);

/* form_json.c: a form body as a jsonb object of strings; drop_empty leaves out empty values */
extern Jsonb *FormToJsonb(text *body, bool drop_empty);

/* callback_event.c: reading and building jsonb the way the SQL operators do */

/* obj->>key: NULL when obj is NULL or not an object, the key is missing or null */
extern char *JsonbGetText(Jsonb *obj, const char *key);

/* obj->key when that is an object, else NULL */
extern Jsonb *JsonbGetObject(Jsonb *obj, const char *key);

/* jsonb_build_object(keys[0], values[0], ...): a NULL value is JSON null */
extern Jsonb *EventBuild(const char *const *keys, char *const *values, int n);

/* Refuse a Content-Type (its media type) that is not one of allowed (22023). */
extern void RequireContentType(Jsonb *headers, const char *const *allowed, int n);

/* Refuse a callback whose signature is missing or wrong (PY010), saying which. */
extern void CallbackSignatureInvalid(const char *message) pg_attribute_noreturn();

/* Unix seconds (1 to 12 digits) as a timestamp, else PY011. */
extern TimestampTz CallbackUnixTime(const char *text, int len);

/* Refuse a timestamp outside the gateway's tolerance (options.tolerance_s, 300 s) with PY011. */
extern void CheckWindow(const CallbackGateway *g, TimestampTz at, bool missing);

/*
 * A gateway credential's plaintext (secret_store.h: palloc'd, NUL-terminated,
 * scrub it with SecretScrub after use); a missing one is 42704, as
 * pay.reveal_secret raises it.
 */
extern char *GatewayCredential(const CallbackGateway *g, const char *name, size_t *len);

/* json_body.c: pay._json_body(body text) -> jsonb object, else 22P02 */
extern Datum pay_json_body(PG_FUNCTION_ARGS);

/*
 * callback_apply.c: apply a new event to its order.  Sets *order_id (0 for
 * none) and *outcome.  cause is what the order's events record ("callback
 * <id>"); an event that came with no callback (callback_id 0: a query's
 * answer, answer_event.c) carries the same text as its "cause" member.
 * Connected to SPI.
 */
extern void CallbackApply(const CallbackGateway *g, Jsonb *event, int64 callback_id, const char *cause,
						  int64 *order_id, char **outcome);

#endif							/* PAY_CALLBACK_H */
