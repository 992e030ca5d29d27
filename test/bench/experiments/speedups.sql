-- test/bench/experiments/speedups.sql — NOT a patch: the cheap changes to
-- pay's SQL whose effect test/bench/README.md reports, as a measurement aid:
--   VARIANT=test/bench/experiments/speedups.sql test/bench/instr.sh
--   VARIANT=test/bench/experiments/speedups.sql test/bench/core.sh
-- Each step says what it costs today (instructions per call, instr.sh).

-- 1. pay.currencies.code is char(3) and _exponent compares it with a text
--    argument: the column is cast to text, so the primary key cannot be used
--    and all 169 rows are compared (about 120k instructions per create_order).
--    Compare as bpchar (an index-usable comparison; the length test keeps
--    'USD ' and 'USDX' out).
CREATE OR REPLACE FUNCTION pay._exponent(p_currency text, p_arg text DEFAULT 'currency') RETURNS smallint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_exponent smallint;
BEGIN
  SELECT exponent INTO v_exponent FROM pay.currencies
   WHERE code = p_currency::bpchar AND length(p_currency) = 3;
  IF NOT FOUND THEN
    RAISE EXCEPTION '%: unknown currency "%"', p_arg, p_currency
      USING ERRCODE = 'invalid_parameter_value',
            HINT = CASE WHEN upper(p_currency) <> p_currency
                        THEN 'Currency codes are upper-case ISO 4217 codes, such as USD.' END;
  END IF;
  RETURN v_exponent;
END $$;

-- 2. Internal helpers, callable only by the SECURITY DEFINER functions that
--    already pinned search_path, pin it again on every call (a GUC save and
--    restore and a search-path recomputation each time).
ALTER FUNCTION pay._exponent(text, text) RESET search_path;
ALTER FUNCTION pay._check_order_args(text, bigint, smallint, interval, jsonb, text) RESET search_path;
ALTER FUNCTION pay._route(text, bigint, text) RESET search_path;
ALTER FUNCTION pay._lock_order(bigint) RESET search_path;
ALTER FUNCTION pay._account(text, char) RESET search_path;
ALTER FUNCTION pay._post(text, bigint, bigint[], bigint[]) RESET search_path;

-- 3. pay._merchant_account is a LANGUAGE sql function with a SET clause, so
--    it is never inlined and its body is read back from text and planned on
--    every call (about 220k instructions per mark_paid).  As plpgsql its plan
--    is cached.
CREATE OR REPLACE FUNCTION pay._merchant_account(o pay.orders) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
  RETURN pay._account('merchant:' || (SELECT code FROM pay.merchants WHERE id = o.merchant_id)
                      || ':' || o.currency, o.currency);
END $$;

-- 4. A CHECK constraint is read back from text and compiled at the start of
--    every INSERT or UPDATE statement (ExecRelCheck); for one-row statements
--    from plpgsql that is per call.  orders_status_check (status IN seven
--    values, about 60k instructions per INSERT or UPDATE of pay.orders) says
--    what the state-machine trigger already enforces: a new order is pending
--    and every change is an edge of pay.order_transitions, whose statuses
--    reference pay.order_statuses.
ALTER TABLE pay.orders DROP CONSTRAINT orders_status_check;
