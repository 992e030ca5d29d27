/*
 * provider_adyen.c — Adyen (Checkout API: payments, captures, cancels, refunds).
 *
 * A gateway of this kind can be created and its credentials stored, but
 * pay does not talk to Adyen yet: it takes no callbacks (they are
 * answered 404, as to a gateway that does not exist) and sends no
 * requests (feature_not_supported).  Filling in this file (and its flags,
 * parse_callback, answer_callback and operations) is all it takes.
 */
#include "postgres.h"

#include "provider.h"

const Provider adyen_provider = {
	.kind = "adyen",
	.flags = 0,
	.parse_callback = NULL,
	.answer_callback = ProviderAnswerJson,
	.operations = NULL,
	.n_operations = 0,
};
