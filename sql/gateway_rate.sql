-- A gateway's max_rate option (requests per second the dispatcher sends it
-- at most): a positive JSON number, at most 10^6; anything else is 22023
-- naming it, and no gateway is created.
\set VERBOSITY default
SELECT pay.create_gateway('rate_ok', 'generic', NULL, '{"max_rate": 5}') > 0 AS created;
SELECT pay.create_gateway('rate_frac', 'generic', NULL, '{"max_rate": 0.5}') > 0 AS fractional;
\set VERBOSITY terse
SELECT pay.create_gateway('rate_zero', 'generic', NULL, '{"max_rate": 0}');
SELECT pay.create_gateway('rate_neg', 'generic', NULL, '{"max_rate": -3}');
SELECT pay.create_gateway('rate_text', 'generic', NULL, '{"max_rate": "5"}');
SELECT pay.create_gateway('rate_word', 'generic', NULL, '{"max_rate": "fast"}');
SELECT pay.create_gateway('rate_null', 'generic', NULL, '{"max_rate": null}');
SELECT pay.create_gateway('rate_big', 'generic', NULL, '{"max_rate": 1000001}');
\set VERBOSITY default
DO $$
BEGIN
  PERFORM pay.create_gateway('rate_code', 'generic', NULL, '{"max_rate": []}');
EXCEPTION WHEN invalid_parameter_value THEN
  RAISE NOTICE 'SQLSTATE %: %', SQLSTATE, SQLERRM;
END $$;
SELECT name, options FROM pay.gateways WHERE name LIKE 'rate\_%' ORDER BY name;
