-- Protocol helpers shared by the callback and notification paths.

CREATE FUNCTION pay.parse_form(body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_parse_form' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.parse_form(text) IS
  'an application/x-www-form-urlencoded body as a jsonb object of strings; repeated fields are refused';
