-- PayPal: what pay keeps of its conversations with PayPal besides the
-- outbox and the answers (src/provider_paypal.c, src/paypal_cert.c).

-- The ids PayPal gives an order's authorization and capture, which later
-- requests name (a capture or void names the authorization, a refund the
-- capture), kept as the answers that name them are applied.
CREATE TABLE pay.paypal_payments (
    order_id    bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('authorization', 'capture')),
    psp_id      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (order_id, kind, psp_id)
);
COMMENT ON TABLE pay.paypal_payments IS
  'PayPal''s authorization and capture ids of an order, from PayPal''s answers; capture, void and refund requests name them';

-- PayPal's webhook signing certificates, by the URL webhooks name them
-- with: fetched once from PayPal, verified (chain, validity, name), and
-- used until they expire.
CREATE TABLE pay.paypal_certs (
    url              text PRIMARY KEY,
    certificate_pem  text NOT NULL,
    not_after        timestamptz NOT NULL,
    fetched_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.paypal_certs IS
  'verified PayPal webhook signing certificates by PAYPAL-CERT-URL, kept until not_after: a webhook naming a kept URL fetches nothing';
