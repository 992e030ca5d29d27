/*
 * provider_paypal.c — PayPal (Orders API v2: an OAuth token, create, capture, authorize, void, refund).
 *
 * A gateway of this kind can be created and its credentials stored, but
 * pay does not talk to PayPal yet: it takes no callbacks (they are
 * answered 404, as to a gateway that does not exist) and sends no
 * requests (feature_not_supported).  Filling in this file (and its flags,
 * parse_callback, answer_callback and operations) is all it takes.
 */
#include "postgres.h"

#include "provider.h"

const Provider paypal_provider = {
	.kind = "paypal",
	.flags = 0,
	.parse_callback = NULL,
	.answer_callback = ProviderAnswerJson,
	.operations = NULL,
	.n_operations = 0,
};
