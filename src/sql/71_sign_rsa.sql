-- RSA signatures (SHA256withRSA, PKCS#1 v1.5) and the schemes built on them:
-- Alipay RSA2, WeChat Pay API v3 (with its AES-256-GCM callback resources) and
-- PayPal webhooks.  Pure functions (no table access); keys in PEM, bare base64
-- or certificate form are parsed once per backend and cached (src/crypto/pkey.c).

CREATE FUNCTION pay.rsa_sha256_sign(message text, private_key_pem text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_rsa_sha256_sign'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.rsa_sha256_sign(text, text) IS
  'base64 SHA256withRSA (PKCS#1 v1.5) signature of the message; the key is a PKCS#8 or PKCS#1 PEM private key (RSA, 2048 to 8192 bits)';

CREATE FUNCTION pay.rsa_sha256_valid(message text, signature text, public_key_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_rsa_sha256_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.rsa_sha256_valid(text, text, text) IS
  'true if signature is a base64 SHA256withRSA signature of message under the key (SPKI or PKCS#1 PEM, bare base64 body, or X.509 certificate PEM); false otherwise; 22023 for a key that is not one';

CREATE FUNCTION pay.alipay_sign(params jsonb, private_key_pem text, exclude text[] DEFAULT '{sign}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_alipay_sign'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.alipay_sign(jsonb, text, text[]) IS
  'Alipay RSA2 signature (base64 SHA256withRSA) of canonical_query(params, exclude); requests we send sign sign_type too, so only sign is excluded by default';

CREATE FUNCTION pay.alipay_signature_valid(params jsonb, public_key_pem text,
                                           exclude text[] DEFAULT '{sign,sign_type}')
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_alipay_signature_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.alipay_signature_valid(jsonb, text, text[]) IS
  'true if params->>''sign'' is a valid Alipay RSA2 signature of canonical_query(params, exclude); asynchronous notifies exclude sign and sign_type (the default); false when sign is missing';

CREATE FUNCTION pay.alipay_response_valid(response_body text, public_key_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_alipay_response_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.alipay_response_valid(text, text) IS
  'true if a synchronous Alipay answer {"..._response":{...},"sign":"..."} carries a valid RSA2 signature over the raw text of its *_response member; false for a bad signature or a malformed answer';

CREATE FUNCTION pay.wechatpay_authorization(method text, url text, body text, mchid text,
                                            serial_no text, private_key_pem text, ts bigint,
                                            nonce text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_wechatpay_authorization'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_authorization(text, text, text, text, text, text, bigint, text) IS
  'WeChat Pay API v3 Authorization header (WECHATPAY2-SHA256-RSA2048) of a request, signed over METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n; url is the path and query';

CREATE FUNCTION pay.wechatpay_signature_valid(ts text, nonce text, body text, signature text,
                                              public_key_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_wechatpay_signature_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_signature_valid(text, text, text, text, text) IS
  'true if the Wechatpay-Signature of a WeChat Pay callback or answer verifies over TIMESTAMP\nNONCE\nBODY\n with the platform certificate or public key';

CREATE FUNCTION pay.wechatpay_decrypt(apiv3_key text, nonce text, associated_data text,
                                      ciphertext text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_wechatpay_decrypt'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_decrypt(text, text, text, text) IS
  'plaintext of a WeChat Pay AEAD_AES_256_GCM resource (32-byte APIv3 key, 12-byte nonce, base64 ciphertext with its tag); 22023 for malformed arguments, PY010 when the tag does not verify';

CREATE FUNCTION pay.wechatpay_parse_authorization(header text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_wechatpay_parse_authorization'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_parse_authorization(text) IS
  'the fields of a WeChat Pay Authorization header as {"mchid","nonce_str","signature","timestamp","serial_no"} strings; NULL if the header is malformed or lacks a field';

CREATE FUNCTION pay.paypal_signature_valid(headers jsonb, body text, webhook_id text,
                                           certificate_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_paypal_signature_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.paypal_signature_valid(jsonb, text, text, text) IS
  'true if a PayPal webhook verifies: SHA256withRSA in PAYPAL-TRANSMISSION-SIG over transmission_id|transmission_time|webhook_id|crc32(body); header names case-insensitive; PAYPAL-AUTH-ALGO, when present, must be SHA256withRSA';

CREATE FUNCTION pay._rsa_key_cache_count()
    RETURNS integer
    AS 'MODULE_PATHNAME', 'pay_rsa_key_cache_count'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pay._rsa_key_cache_count() IS
  'internal: number of RSA keys parsed and cached by this backend (at most 32)';

CREATE FUNCTION pay._crc32(data bytea)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_crc32'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._crc32(bytea) IS
  'internal: CRC-32 of the bytes as zlib computes it (the checksum in PayPal''s signed message)';

GRANT EXECUTE ON FUNCTION
    pay.rsa_sha256_sign(text, text),
    pay.rsa_sha256_valid(text, text, text),
    pay.alipay_sign(jsonb, text, text[]),
    pay.alipay_signature_valid(jsonb, text, text[]),
    pay.alipay_response_valid(text, text),
    pay.wechatpay_authorization(text, text, text, text, text, text, bigint, text),
    pay.wechatpay_signature_valid(text, text, text, text, text),
    pay.wechatpay_decrypt(text, text, text, text),
    pay.wechatpay_parse_authorization(text),
    pay.paypal_signature_valid(jsonb, text, text, text)
  TO pay_app, pay_admin;
