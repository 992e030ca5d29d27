-- The HMAC family of signatures (src/sign_hmac.c, src/crypto/hmac.c,
-- src/crypto/stripe.c, src/crypto/adyen.c): pure functions, no table access.
-- Signing functions are STRICT (NULL in, NULL out); the _valid functions are
-- not: a missing signature is invalid (false), a missing key an error.

CREATE FUNCTION pay.hmac_sha256_hex(key text, message text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_hmac_sha256_hex'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.hmac_sha256_hex(text, text) IS
    'lower-case hex HMAC-SHA256 of message under key (both as their UTF-8 bytes)';

CREATE FUNCTION pay.sign_params(params jsonb, secret text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_sign_params'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.sign_params(jsonb, text) IS
    'lower-case hex HMAC-SHA256 under secret of pay.canonical_query(params) (sign and sign_type left out)';

CREATE FUNCTION pay.sign_params_sha256(params jsonb, secret text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_sign_params_sha256'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.sign_params_sha256(jsonb, text) IS
    'the SHA-256-with-secret scheme: lower-case hex SHA-256 of pay.canonical_query(params) with secret appended';

CREATE FUNCTION pay.stripe_signature_header(payload text, secret text, at timestamptz DEFAULT now())
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_stripe_signature_header'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.stripe_signature_header(text, text, timestamptz) IS
    'a Stripe-Signature header "t=<unix>,v1=<hex HMAC-SHA256 of t.payload>" for payload, signed with the endpoint secret at time at';

CREATE FUNCTION pay.stripe_signature_valid(payload text, header text, secret text,
                                           tolerance_s integer DEFAULT 300, at timestamptz DEFAULT now())
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_stripe_signature_valid'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay.stripe_signature_valid(text, text, text, integer, timestamptz) IS
    'true when a v1 signature of the Stripe-Signature header matches payload under secret and |at - t| <= tolerance_s (0: no time check); false for anything else, malformed headers included';

CREATE FUNCTION pay.adyen_hmac_signature(item jsonb, hmac_key_hex text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_adyen_hmac_signature'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.adyen_hmac_signature(jsonb, text) IS
    'base64 HMAC-SHA256 of an Adyen NotificationRequestItem (pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success) under the hex HMAC key';

CREATE FUNCTION pay.adyen_hmac_valid(item jsonb, hmac_key_hex text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_adyen_hmac_valid'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay.adyen_hmac_valid(jsonb, text) IS
    'true when item->''additionalData''->>''hmacSignature'' is the Adyen HMAC of item under the hex HMAC key';

GRANT EXECUTE ON FUNCTION
    pay.hmac_sha256_hex(text, text),
    pay.sign_params(jsonb, text),
    pay.sign_params_sha256(jsonb, text),
    pay.stripe_signature_header(text, text, timestamptz),
    pay.stripe_signature_valid(text, text, text, integer, timestamptz),
    pay.adyen_hmac_signature(jsonb, text),
    pay.adyen_hmac_valid(jsonb, text)
    TO pay_app, pay_admin;
