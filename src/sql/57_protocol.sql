-- Protocol helpers shared by the callback and notification paths.

CREATE FUNCTION pay.parse_form(body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_parse_form' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.parse_form(text) IS
  'an application/x-www-form-urlencoded body as a jsonb object of strings; repeated fields are refused';

CREATE FUNCTION pay.constant_time_equal(a text, b text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_constant_time_equal' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.constant_time_equal(text, text) IS
  'compares two signatures in time that depends only on their lengths';

-- What the HTTP-facing functions (handle_callback, the merchant API) answer;
-- pay-proxy sends it as it is.  (A named type rather than RETURNS TABLE:
-- a column "body" would clash with handle_callback's argument "body".)
CREATE TYPE pay.http_response AS (http_status integer, content_type text, body text);
COMMENT ON TYPE pay.http_response IS 'an HTTP answer: status, content type and body, sent by pay-proxy as is';

-- Header names compare case-insensitively: one object with lower-case names.
CREATE FUNCTION pay._lower_headers(headers jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_lower_headers' LANGUAGE C IMMUTABLE;
