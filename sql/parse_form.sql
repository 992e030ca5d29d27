-- pay.parse_form: form-encoded bodies (Alipay notifies) decoded exactly.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pay.parse_form('a=1&b=two+words&c=%E4%B8%AD%E6%96%87&d=&e&f=x%3Dy%26z');
SELECT pay.parse_form('total_amount=12.34&trade_status=TRADE_SUCCESS&sign=ab%2Bcd%2F%3D%3D');
SELECT pay.parse_form('') AS empty, pay.parse_form('&&a=1&&') AS empty_parts;
-- a value keeps '=' after the first one, '+' is a space, %2B a plus
SELECT pay.parse_form('k=a=b') ->> 'k' AS keeps_equals, pay.parse_form('k=1+1%2B1') ->> 'k' AS plus;
SELECT pg_temp.err($$SELECT pay.parse_form('a=%ZZ')$$) AS bad_escape;
SELECT pg_temp.err($$SELECT pay.parse_form('a=%4')$$) AS short_escape;
SELECT pg_temp.err($$SELECT pay.parse_form('a=%')$$) AS bare_percent;
SELECT pg_temp.err($$SELECT pay.parse_form('a=%FF%FE')$$) AS not_utf8;
SELECT pg_temp.err($$SELECT pay.parse_form('a=%00')$$) AS nul_byte;
SELECT pg_temp.err($$SELECT pay.parse_form('a=1&a=2')$$) AS repeated;
SELECT pg_temp.err($$SELECT pay.parse_form(repeat('x=1&', 1) || string_agg('k' || i || '=v', '&')) FROM generate_series(1, 201) i$$) AS too_many;
