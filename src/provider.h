/*
 * provider.h — a payment provider, described once.
 *
 * Everything pay does differently for Stripe, Alipay, WeChat Pay, the
 * generic scheme (and, once their files are filled in, Adyen and PayPal)
 * is reached through one Provider value: src/provider_<kind>.c holds it,
 * src/provider_registry.c lists them all, and every place that used to ask
 * "which kind is this gateway?" asks the registry instead:
 *
 *   pay.handle_callback     parse_callback, answer_callback
 *   pay._outbox_request     the operation's build function
 *   pay._outbox_apply       the operation's read function
 *   pay.create_gateway,     pay._provider_kinds(feature): the kinds, or
 *   pay._creates_at_psp,    those with a flag
 *   pay._jobs, statements
 *
 * Requests and answers are per operation NAME (create_payment, query,
 * refund, query_refund, close; a provider may add its own, such as an
 * OAuth token or capture and void), so a provider with more operations
 * fits without changing the callers: an operation a provider does not
 * list is refused with 0A000 naming the kind and the operation.
 *
 * Statement fetches are operations too (fetch_statement, and the steps
 * fetch_statement_poll, fetch_statement_file) of the providers flagged
 * PROVIDER_STATEMENTS; see "Statement fetches" below for their answers.
 *
 * Adding a provider: write src/provider_<kind>.c with its Provider, and
 * name it in provider_registry.c (its declaration and its line in
 * providers[]).  Nothing else lists
 * the kinds: the CHECK on pay.gateways.kind asks the registry
 * (pay._provider_kind_known).
 */
#ifndef PAY_PROVIDER_H
#define PAY_PROVIDER_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/jsonb.h"

#include "callback.h"

/* What a provider does; pay._provider_kinds(feature) lists the kinds with one. */
typedef enum ProviderFlag
{
	PROVIDER_CALLBACKS = 1 << 0,	/* takes callbacks (else a callback to it is 404) */
	PROVIDER_CREATES_PAYMENTS = 1 << 1, /* a new order queues create_payment */
	PROVIDER_NEEDS_BASE_URL = 1 << 2,	/* has no default API address: requests need base_url */
	PROVIDER_REFUNDS = 1 << 3,	/* refunds are sent to it */
	PROVIDER_STATEMENTS = 1 << 4,	/* its statements are fetched (statement_format, statement_file) */
	PROVIDER_MANUAL_CAPTURE = 1 << 5,	/* authorizes now, captures later (capture, void) */
	PROVIDER_CLOSE_NEEDS_PSP_ID = 1 << 6	/* its close names the PSP's id (psp_txn_id), not ours */
} ProviderFlag;

/*
 * One outbox row's request: the row (pay.outbox) and its gateway
 * (pay.gateways) as composite Datums with their type ids, so that a
 * builder may read any column or hand them to SQL.
 */
typedef struct ProviderRequest
{
	const char *operation;
	Datum		outbox;
	Oid			outbox_type;
	Datum		gateway;
	Oid			gateway_type;
} ProviderRequest;

/*
 * One answer to an outbox row: the row, its gateway, its order (pay.orders;
 * (Datum) 0 for a statement fetch step, which is about no order) and the
 * HTTP status, header lines (a jsonb object, lower-case names) and body.
 */
typedef struct ProviderAnswer
{
	ProviderRequest request;
	Datum		order;
	Oid			order_type;
	int32		status;
	Jsonb	   *headers;
	text	   *body;
} ProviderAnswer;

/*
 * Build the request: a pay.http_request Datum (method, url, headers text[],
 * body), in the current memory context.  Not connected to SPI: a builder
 * that runs SQL connects itself.
 */
typedef Datum (*ProviderBuildFn) (const ProviderRequest *req);

/*
 * Read the answer: verify it, check it is about our order (or refund), and
 * turn it into the summary pay._apply_answer consumes (a jsonb object:
 * verdict applied/refused, reason, psp_txn_id, next_action, event, refund,
 * final, already_paid; a statement step's summary is described below).
 * Connected to SPI: the caller copies the result out before SPI_finish.
 */
typedef Jsonb *(*ProviderReadFn) (const ProviderAnswer *ans);

/*
 * Statement fetches.  The steps are operations whose build functions send
 * them like any request, but their answers are about no order and move no
 * money, so they are not read into the summary above:
 *
 * - fetch_statement and fetch_statement_poll answer JSON naming the next
 *   step.  The operation's read function turns it into a step summary
 *   (ProviderStatementNext: {"verdict": "applied", "next": {operation,
 *   params, key, delay_s}}; or ProviderStatementRefused: {"verdict":
 *   "refused", "reason"}), and 89_statement_fetch.sql queues that step,
 *   the same way for every provider, under <operation>:<gateway>:<key>.
 * - fetch_statement_file answers the statement file itself.  It may be
 *   binary (Alipay's zip), so it arrives as bytes (pay._outbox_apply_bytes),
 *   not as the text a read function takes, and it is content to import
 *   rather than an answer to summarise; so the file step is a hook of the
 *   provider, statement_file, which checks the file (WeChat Pay: the SHA-1
 *   its API answer named) and returns what pay.import_statement imports in
 *   the provider's statement_format (Alipay: the detail member of the zip).
 *   It returns NULL with *reason set for a file that must not be imported;
 *   it raises for a malformed one.  Not connected to SPI.
 *
 * The file's URL comes from the PSP's answer and the file step may carry
 * our credentials: each reader checks it with ProviderStatementUrlTrusted
 * and the provider's own file host before it names the next step.
 */
typedef bytea *(*ProviderStatementFileFn) (const ProviderRequest *req, bytea *file, char **reason);

typedef struct ProviderOperation
{
	const char *name;
	ProviderBuildFn build;
	ProviderReadFn read;
} ProviderOperation;

/*
 * A callback's answer, as the provider expects it: verified says whether
 * the callback was accepted (or was a duplicate of one), reason says why
 * not.  *type and *body are the Content-Type and body (palloc'd or static).
 */
typedef void (*ProviderAnswerCallbackFn) (bool verified, const char *reason,
										  const char **type, char **body);

/*
 * Verify a callback and parse it into the common event (callback.h), or,
 * for a PSP that sends several events in one request (Adyen), into a JSON
 * array of them, every one verified (callback_handle.c applies them in
 * order).  headers has lower-case names; body may be NULL.
 */
typedef Jsonb *(*ProviderParseCallbackFn) (const CallbackGateway *g, Jsonb *headers, text *body);

typedef struct Provider
{
	const char *kind;			/* pay.gateways.kind */
	uint32		flags;			/* ProviderFlag bits */

	/* callbacks: NULL parse_callback when the provider takes none */
	ProviderParseCallbackFn parse_callback;
	ProviderAnswerCallbackFn answer_callback;

	/* requests and their answers, by operation name; n_operations 0: none */
	const ProviderOperation *operations;
	int			n_operations;

	/*
	 * Two-phase payments (capture, void): how long an authorization stays
	 * capturable, in seconds (a gateway's default window, pay._authorization_window);
	 * 0 when the provider has no manual capture.
	 */
	int32		authorization_validity_s;

	/*
	 * Statement fetches (PROVIDER_STATEMENTS): the pay.import_statement
	 * format of the provider's files, and the file step's hook (NULL: the
	 * file is imported as downloaded).
	 */
	const char *statement_format;
	ProviderStatementFileFn statement_file;
} Provider;

/* provider_registry.c */
extern const Provider *ProviderFind(const char *kind);
extern const ProviderOperation *ProviderFindOperation(const Provider *p, const char *operation);
/* The operation, else 0A000 naming the kind and the operation. */
extern const ProviderOperation *ProviderRequireOperation(const Provider *p, const char *operation);
/* The callback answers a provider-less gateway gets: JSON, as Stripe's. */
extern void ProviderAnswerJson(bool verified, const char *reason, const char **type, char **body);

/*
 * provider_request.c: what request builders share.  The order and refund
 * of a request (22023 when it has none; each connects to SPI itself), a
 * gateway credential (SecretFetch's: 42704 when missing; SecretScrub it),
 * a form body (pay.form_urlencode's), jsonb a || b (b NULL: a), and the
 * pay.http_request value (headers: a List of "Name: value" strings; body
 * NULL for none).
 */
typedef struct ProviderOrder
{
	int64		id;
	int64		amount;
	char	   *currency;
	char	   *psp_txn_id;		/* NULL until the PSP named it */
} ProviderOrder;

typedef struct ProviderRefund
{
	int64		id;
	int64		amount;
	char	   *psp_refund_id;	/* NULL until the PSP named it */
} ProviderRefund;

extern char *ProviderRowText(Datum row, const char *column);
extern int64 ProviderRowInt64(Datum row, const char *column);
extern Jsonb *ProviderRowJsonb(Datum row, const char *column);
extern void ProviderRequestOrder(const ProviderRequest *req, ProviderOrder *o);
extern void ProviderRequestRefund(const ProviderRequest *req, ProviderRefund *f);
extern char *ProviderCredential(const ProviderRequest *req, const char *name, size_t *len);
extern char *ProviderFormBody(Jsonb *fields);
extern Jsonb *ProviderJsonbConcat(Jsonb *a, Jsonb *b);
extern Datum ProviderHttpRequest(const char *method, const char *url, List *headers, const char *body);
/* A required gateway option (22023 naming it when missing or empty). */
extern char *ProviderGatewayOption(const ProviderRequest *req, const char *name);
/* The gateway's base_url (else default_url) without trailing slashes. */
extern char *ProviderBaseUrl(const ProviderRequest *req, const char *default_url);
/* Members of a jsonb object being built: a string (NULL: null), a number, a nested object's start. */
extern void ProviderPushText(JsonbParseState **state, const char *key, const char *value);
extern void ProviderPushInt64(JsonbParseState **state, const char *key, int64 value);
extern void ProviderPushObject(JsonbParseState **state, const char *key);

/*
 * provider_answer.c: what answer readers share.  ProviderExpect raises
 * 22023 (the answer is rejected) unless a member the answer names is ours
 * (theirs NULL passes when not required; ours NULL matches only a missing
 * member).  The body as a JSON object ({} when empty; 22P02 when not JSON);
 * a refusal's body, else {"message": "HTTP <status>: <its start>"}.  The
 * summary's members: a boolean (-1: null), a jsonb value (NULL: null), a
 * refusal, an application (NULL members left out), a refund, a query's
 * event id ("query:<outbox id>"), and the gateway as a callback sees it.
 */
extern void ProviderExpect(const char *what, const char *theirs, const char *ours, bool required);
extern Jsonb *ProviderAnswerBody(text *body);
extern Jsonb *ProviderRefusalBody(int32 status, text *body);
extern void ProviderPushBool(JsonbParseState **state, const char *key, int value);
extern void ProviderPushJsonb(JsonbParseState **state, const char *key, Jsonb *value);
extern Jsonb *ProviderAnswerRefused(int final, const char *reason, const char *code, int already_paid);
extern Jsonb *ProviderAnswerApplied(const char *psp_txn_id, Jsonb *next_action, Jsonb *event, Jsonb *refund);
extern Jsonb *ProviderRefundSummary(const char *psp_refund_id, const char *status);
extern char *ProviderQueryEventId(const ProviderAnswer *ans);
extern CallbackGateway ProviderAnswerGateway(const ProviderAnswer *ans);

/*
 * provider_statement.c: what statement fetch readers share.  A step
 * summary naming the next step (params NULL: {}; key NULL makes the
 * step's idempotency key NULL, which the outbox refuses; delay_s 0: at
 * once) or refusing the answer; the answer's body as jsonb (NULL when it
 * has none; 89_statement_fetch.sql has checked that it is JSON); and
 * whether a file URL may be fetched: not when it holds whitespace, a
 * backslash or an @ (userinfo), else when it is under the gateway's
 * base_url, under its origin (scheme, host and port) if whole_origin,
 * or under https://<file_host>/.
 */
extern Jsonb *ProviderStatementNext(const char *operation, Jsonb *params, const char *key, int delay_s);
extern Jsonb *ProviderStatementRefused(const char *reason);
extern Jsonb *ProviderStatementBody(text *body);
extern bool ProviderStatementUrlTrusted(const ProviderRequest *req, const char *url, bool whole_origin,
										const char *file_host);

/* provider_stripe_statement.c: Stripe's statement fetch steps (fetch_statement*) */
extern Datum StripeStatementBuild(const ProviderRequest *req);
extern Jsonb *StripeStatementRead(const ProviderAnswer *ans);

#endif							/* PAY_PROVIDER_H */
