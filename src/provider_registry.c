/*
 * provider_registry.c — the list of payment providers, and the SQL
 * functions that expose it.
 *
 * Every dispatch by gateway kind goes through ProviderFind: the callback
 * parser and answer (callback_handle.c), the request builders and answer
 * readers (provider_dispatch.c), and the kind lists SQL asks for
 * (pay._provider_kinds: create_gateway, _creates_at_psp, the jobs, the
 * statement fetch), and the CHECK on pay.gateways.kind
 * (pay._provider_kind_known).  Adding a provider is one line here and its
 * own file.
 *
 * The order is the order pay.create_gateway's error message lists them in.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pay.h"
#include "provider.h"

/* The providers, each defined in its src/provider_<kind>.c. */
extern const Provider stripe_provider;
extern const Provider alipay_provider;
extern const Provider wechatpay_provider;
extern const Provider adyen_provider;
extern const Provider paypal_provider;
extern const Provider generic_provider;

static const Provider *const providers[] = {
	&stripe_provider,
	&alipay_provider,
	&wechatpay_provider,
	&adyen_provider,
	&paypal_provider,
	&generic_provider,
};

#define N_PROVIDERS lengthof(providers)

/* The feature names of pay._provider_kinds(feature). */
static const struct
{
	const char *name;
	uint32		flag;
}			features[] = {
	{"callbacks", PROVIDER_CALLBACKS},
	{"creates_payments", PROVIDER_CREATES_PAYMENTS},
	{"needs_base_url", PROVIDER_NEEDS_BASE_URL},
	{"refunds", PROVIDER_REFUNDS},
	{"statements", PROVIDER_STATEMENTS},
	{"manual_capture", PROVIDER_MANUAL_CAPTURE},
	{"close_needs_psp_id", PROVIDER_CLOSE_NEEDS_PSP_ID},
};

const Provider *
ProviderFind(const char *kind)
{
	if (kind == NULL)
		return NULL;
	for (int i = 0; i < (int) N_PROVIDERS; i++)
		if (strcmp(providers[i]->kind, kind) == 0)
			return providers[i];
	return NULL;
}

const ProviderOperation *
ProviderFindOperation(const Provider *p, const char *operation)
{
	for (int i = 0; i < p->n_operations; i++)
		if (strcmp(p->operations[i].name, operation) == 0)
			return &p->operations[i];
	return NULL;
}

const ProviderOperation *
ProviderRequireOperation(const Provider *p, const char *operation)
{
	const ProviderOperation *op;

	/* the message callers have always seen for a provider that takes no requests */
	if (p->n_operations == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sending requests to %s gateways is not supported", p->kind)));
	op = ProviderFindOperation(p, operation);
	if (op == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s gateways do not support operation \"%s\"", p->kind, operation)));
	return op;
}

/* Stripe's answer shape; also what a callback to no gateway gets. */
void
ProviderAnswerJson(bool verified, const char *reason, const char **type, char **body)
{
	*type = "application/json";
	*body = verified ? "{\"received\":true}" : psprintf("{\"error\": \"%s\"}", reason);
}

PG_FUNCTION_INFO_V1(pay_provider_kinds);

/*
 * pay._provider_kinds(feature text DEFAULT NULL) -> text[]: every kind in
 * registry order, or those with the feature (22023 for a feature that
 * does not exist).
 */
Datum
pay_provider_kinds(PG_FUNCTION_ARGS)
{
	uint32		flag = 0;
	Datum		kinds[N_PROVIDERS];
	int			n = 0;

	if (!PG_ARGISNULL(0))
	{
		char	   *feature = text_to_cstring(PG_GETARG_TEXT_PP(0));
		int			i;

		for (i = 0; i < (int) lengthof(features); i++)
			if (strcmp(features[i].name, feature) == 0)
				break;
		if (i == (int) lengthof(features))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature: no provider feature \"%s\"", feature)));
		flag = features[i].flag;
	}
	for (int i = 0; i < (int) N_PROVIDERS; i++)
		if (flag == 0 || (providers[i]->flags & flag) != 0)
			kinds[n++] = CStringGetTextDatum(providers[i]->kind);
	PG_RETURN_ARRAYTYPE_P(construct_array(kinds, n, TEXTOID, -1, false, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(pay_provider_kind_known);

/*
 * pay._provider_kind_known(kind text) -> boolean: is there a provider of
 * this kind?  The CHECK on pay.gateways.kind, so that the registry is the
 * one list of kinds.  IMMUTABLE as far as a CHECK may rely on: the list
 * changes only with a new build of pay, and a build never drops a kind.
 */
Datum
pay_provider_kind_known(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(ProviderFind(kind) != NULL);
}

PG_FUNCTION_INFO_V1(pay_provider_operation_kinds);

/*
 * pay._provider_operation_kinds(operation text) -> text[]: the kinds whose
 * provider sends that request (registry order).  What the janitor may ask
 * (query, query_refund) and what the expiry job may close (close) follow
 * from the providers' own operation lists.
 */
Datum
pay_provider_operation_kinds(PG_FUNCTION_ARGS)
{
	char	   *operation = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		kinds[N_PROVIDERS];
	int			n = 0;

	for (int i = 0; i < (int) N_PROVIDERS; i++)
	{
		const ProviderOperation *op = ProviderFindOperation(providers[i], operation);

		if (op != NULL && op->build != NULL)
			kinds[n++] = CStringGetTextDatum(providers[i]->kind);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(kinds, n, TEXTOID, -1, false, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(pay_provider_authorization_window);

/*
 * pay._provider_authorization_window(kind text) -> interval: how long the
 * provider keeps an authorization capturable (Provider.authorization_validity_s),
 * NULL for a kind without manual capture or one that names none.  The
 * default of a gateway's authorization window (pay._authorization_window).
 */
Datum
pay_provider_authorization_window(PG_FUNCTION_ARGS)
{
	const Provider *p = ProviderFind(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	Interval   *window;

	if (p == NULL || (p->flags & PROVIDER_MANUAL_CAPTURE) == 0 || p->authorization_validity_s <= 0)
		PG_RETURN_NULL();
	window = palloc0(sizeof(Interval));
	window->day = p->authorization_validity_s / SECS_PER_DAY;
	window->time = (int64) (p->authorization_validity_s % SECS_PER_DAY) * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(window);
}
