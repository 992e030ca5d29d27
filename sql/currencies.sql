-- ISO 4217 currencies, their exponents, and exact amount conversion.
SELECT count(*) AS currencies, count(*) FILTER (WHERE exponent = 0) AS exp0,
       count(*) FILTER (WHERE exponent = 2) AS exp2, count(*) FILTER (WHERE exponent = 3) AS exp3,
       count(*) FILTER (WHERE exponent = 4) AS exp4
  FROM pay.currencies;
SELECT code, numeric_code, exponent, name FROM pay.currencies
 WHERE code IN ('JPY', 'KRW', 'VND', 'USD', 'EUR', 'CNY', 'GBP', 'KWD', 'BHD', 'TND', 'CLF', 'UYW')
 ORDER BY code;
-- a few that must not be missing from a whole list
SELECT array_agg(c ORDER BY c) AS missing
  FROM unnest('{AED,ARS,BRL,CHF,HKD,IDR,INR,ISK,MXN,NGN,NZD,PLN,RUB,SEK,SGD,THB,TRY,TWD,UAH,ZAR,XOF,XAF,XPF}'::text[]) c
 WHERE c NOT IN (SELECT code FROM pay.currencies);

-- exact conversion both ways, never through floating point
SELECT pay.parse_amount('12.34', 'CNY') AS cny, pay.parse_amount('12.3', 'USD') AS usd_one_place,
       pay.parse_amount('12', 'USD') AS usd_whole, pay.parse_amount('1200', 'JPY') AS jpy,
       pay.parse_amount('1.234', 'KWD') AS kwd, pay.parse_amount('12.340', 'USD') AS trailing_zero,
       pay.parse_amount('0.01', 'USD') AS one_cent, pay.parse_amount('-5.00', 'EUR') AS negative;
SELECT pay.parse_amount('92233720368547758.07', 'USD') AS bigint_max;
SELECT pay.format_amount(1234, 'CNY') AS cny, pay.format_amount(1200, 'JPY') AS jpy,
       pay.format_amount(1234, 'KWD') AS kwd, pay.format_amount(5, 'USD') AS five_cents,
       pay.format_amount(-5, 'USD') AS minus, pay.format_amount(12345, 'CLF') AS clf,
       pay.format_amount(-9223372036854775808, 'USD') AS bigint_min;
-- 0.1 + 0.2 style traps: the round trip is exact for every exponent
SELECT bool_and(pay.parse_amount(pay.format_amount(v, c.code), c.code) = v) AS round_trip
  FROM pay.currencies c, unnest('{1,10,29,30,99,101,12345678901234,-7,9223372036854775807}'::bigint[]) v;

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pg_temp.err($$SELECT pay.parse_amount('12.345', 'USD')$$) AS too_precise;
SELECT pg_temp.err($$SELECT pay.parse_amount('1.5', 'JPY')$$) AS jpy_has_no_cents;
SELECT pg_temp.err($$SELECT pay.parse_amount('1e3', 'USD')$$) AS exponent_syntax;
SELECT pg_temp.err($$SELECT pay.parse_amount('12.', 'USD')$$) AS dangling_point;
SELECT pg_temp.err($$SELECT pay.parse_amount('.5', 'USD')$$) AS no_integer_part;
SELECT pg_temp.err($$SELECT pay.parse_amount(' 12', 'USD')$$) AS leading_space;
SELECT pg_temp.err($$SELECT pay.parse_amount('', 'USD')$$) AS empty;
SELECT pg_temp.err($$SELECT pay.parse_amount('92233720368547758.08', 'USD')$$) AS overflow;
SELECT pg_temp.err($$SELECT pay.parse_amount('99999999999999999999999', 'JPY')$$) AS overflow_digits;
SELECT pg_temp.err($$SELECT pay.parse_amount('1.00', 'usd')$$) AS lower_case_currency;
SELECT pg_temp.err($$SELECT pay.format_amount(1, 'XXX')$$) AS unknown_currency;
-- the currencies table cannot lose or re-key a currency orders refer to
SELECT pg_temp.err($$DELETE FROM pay.currencies WHERE code = 'USD'$$) AS delete_currency;
SELECT pg_temp.err($$UPDATE pay.currencies SET exponent = 3 WHERE code = 'USD'$$) AS change_exponent;
