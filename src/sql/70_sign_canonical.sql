-- The canonical parameter string that HMAC, SHA-256 and RSA2 signatures cover
-- (src/sign_canonical.c, src/crypto/canonical.c).

CREATE FUNCTION pay.canonical_query(params jsonb, exclude text[] DEFAULT '{sign,sign_type}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_canonical_query'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.canonical_query(jsonb, text[]) IS
    'the canonical parameter string of a JSON object: keys in byte order, k=v joined by &, values unescaped (nested values as compact JSON); excluded keys, null and empty values left out';
GRANT EXECUTE ON FUNCTION pay.canonical_query(jsonb, text[]) TO pay_app, pay_admin;
