/*
 * provider_stripe.c — Stripe.
 *
 * Callbacks: a webhook event, verified and normalised:
 * Stripe-Signature "t=...,v1=..." over "<t>.<body>" with the endpoint's
 * webhook_secret (crypto/stripe.c), then the signed timestamp against the
 * gateway's window, then the event's fields.
 * The parser is C, not PL/pgSQL, because PostgreSQL would prepare a
 * PL/pgSQL parser's expressions again in every transaction.
 *
 * Requests (payment intents, refunds) and their answers: _build_stripe
 * and _answer_stripe.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"
#include "hmac.h"
#include "secret_store.h"
#include "stripe.h"

/* Does the header's v1 signature verify over the body with the webhook secret? */
static bool
SignatureValid(const CallbackGateway *g, const char *header, text *body)
{
	size_t		len = 0;
	char	   *secret = GatewayCredential(g, "webhook_secret", &len);
	StripeVerdict verdict = STRIPE_MALFORMED;

	if (len == 0 || len > HMAC_KEY_MAX)
	{
		SecretScrub(secret, len);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(len == 0 ? "secret must not be empty" : "secret is too long")));
	}
	if (body != NULL)
		verdict = stripe_verify(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
								header, strlen(header), (const uint8_t *) secret, len, 0, 0);
	SecretScrub(secret, len);
	if (verdict == STRIPE_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the Stripe signature")));
	return verdict == STRIPE_VALID;
}

/*
 * The timestamp the signature covers, as stripe_verify read it: from the
 * one "t=" element (a look for any "t=" in the header could pick up an
 * element the verifier ignores, such as " t=<now>", and let an old signed
 * callback through the window).
 */
static TimestampTz
SignedTimestamp(const char *header)
{
	StripeHeader h;
	char		digits[32];

	if (stripe_parse_header(header, strlen(header), &h) != STRIPE_PARSE_OK)
		CallbackSignatureInvalid("Stripe-Signature does not verify");
	snprintf(digits, sizeof(digits), "%lld", (long long) h.timestamp);
	return CallbackUnixTime(digits, strlen(digits));
}

/*
 * Stripe's lower-case currency code in upper case, ASCII letters only: a
 * Unicode case mapping would turn "u", U+017F (long s), "d" into "USD".
 * Any other byte stays as it is, and the code then matches no order's
 * currency.
 */
static char *
CurrencyUpper(const char *code)
{
	char	   *upper = pstrdup(code);
	char	   *c;

	for (c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = *c - 'a' + 'A';
	return upper;
}

/* Stripe's event type as our kind of event. */
static const char *
Kind(const char *type)
{
	if (type == NULL)
		return "ignored";
	if (strcmp(type, "payment_intent.succeeded") == 0)
		return "payment_succeeded";
	if (strcmp(type, "payment_intent.payment_failed") == 0)
		return "payment_failed";
	if (strcmp(type, "payment_intent.canceled") == 0)
		return "closed";
	if (strcmp(type, "charge.refunded") == 0)
		return "refunded";
	return "ignored";
}

static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	static const char *const json[] = {"application/json"};
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id",
	"amount", "currency", "refund_total", "refund_id"};
	char	   *header = JsonbGetText(headers, "stripe-signature");
	Jsonb	   *event,
			   *object;
	char	   *type,
			   *amount,
			   *currency;
	char	   *values[9];

	if (header == NULL)
		CallbackSignatureInvalid("Stripe-Signature header is missing");
	RequireContentType(headers, json, 1);
	if (!SignatureValid(g, header, body))
		CallbackSignatureInvalid("Stripe-Signature does not verify");
	CheckWindow(g, SignedTimestamp(header), false);

	event = DatumGetJsonbP(DirectFunctionCall1(pay_json_body, PointerGetDatum(body)));
	type = JsonbGetText(event, "type");
	object = JsonbGetObject(JsonbGetObject(event, "data"), "object");
	amount = JsonbGetText(object, "amount_received");
	currency = JsonbGetText(object, "currency");
	values[0] = JsonbGetText(event, "id");
	values[1] = type;
	values[2] = (char *) Kind(type);
	values[3] = JsonbGetText(JsonbGetObject(object, "metadata"), "order_id");
	values[4] = JsonbGetText(object, (type && strcmp(type, "charge.refunded") == 0) ? "payment_intent" : "id");
	values[5] = amount ? amount : JsonbGetText(object, "amount");
	values[6] = currency ? CurrencyUpper(currency) : NULL;
	values[7] = JsonbGetText(object, "amount_refunded");
	values[8] = values[0];
	return EventBuild(keys, values, 9);
}

/* Requests and answers: the builder and reader of 80_outbox.sql and 81_psp_answers.sql. */
static ProviderSqlFunction builder = {.name = "_build_stripe"};
static SPIPlanPtr read_plan = NULL;

static Datum
Build(const ProviderRequest *req)
{
	return ProviderSqlBuild(&builder, req);
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	return ProviderSqlRead(&read_plan, "SELECT pay._answer_stripe($1, $3, $4, $6)", ans);
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"query", Build, Read},
	{"refund", Build, Read},
	{"query_refund", Build, Read},
	{"close", Build, Read},
};

const Provider stripe_provider = {
	.kind = "stripe",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_STATEMENTS,
	.parse_callback = ParseCallback,
	.answer_callback = ProviderAnswerJson,
	.operations = operations,
	.n_operations = lengthof(operations),
};
