-- PSP fees and settlement terms.
--
-- Each gateway has a fee rule, optionally per currency (a rule for the
-- currency wins over the gateway's rule for every currency): a percentage of
-- the amount plus a fixed amount in minor units, optionally clamped to a
-- minimum and a maximum fee (minor units), and the settlement delay in days.  set_fee never overwrites a rule: it adds a version valid from now,
-- so the fee a payment was expected to cost is always the one of the rule in
-- force when it was paid (pay._fee_at).
--
-- The expected fee of a payment is not written on the payment's row: the
-- settle path (src/order_settle.c, one conditional UPDATE) stays as it is,
-- and the fee is computed when a statement line is reconciled against the
-- payment, from the rule in force at the payment's paid_at, and stored with
-- the line (pay.statement_lines.expected_fee).  The rules are append-only
-- history, so that computation gives the same answer whenever it is made.
--
-- Rounding: the percentage is rounded half-up to the minor unit (what Stripe,
-- Alipay and WeChat Pay document for their fees), then the fixed amount is
-- added, then the sum is clamped to [minimum, maximum]; computed in numeric,
-- never floating point.  The minimum applies to every payment the rule
-- covers, however small.

CREATE TABLE pay.fee_rules (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway          text NOT NULL,         -- in pay.gateways: fee_rules_gateway
    currency         char(3),               -- NULL: every currency; in pay.currencies: fee_rules_currency
    percent          numeric NOT NULL CHECK (percent >= 0 AND percent < 100),
    fixed            bigint NOT NULL CHECK (fixed >= 0),
    settlement_days  integer NOT NULL CHECK (settlement_days BETWEEN 0 AND 365),
    valid_from       timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by       name NOT NULL DEFAULT session_user,
    minimum          bigint CHECK (minimum >= 0),   -- NULL: no minimum fee
    maximum          bigint CHECK (maximum >= 0),   -- NULL: no maximum fee
    CONSTRAINT fee_rules_minimum_maximum CHECK (maximum >= minimum)
);
CREATE INDEX fee_rules_lookup ON pay.fee_rules (gateway, currency, valid_from);
COMMENT ON TABLE pay.fee_rules IS
  'fee rules per gateway (and currency; NULL = any): percent of the amount (half-up to the minor unit) + fixed minor units, clamped to minimum/maximum (minor units; NULL: none), settlement delay; each set_fee adds a version valid from then';

CREATE TRIGGER fee_rules_gateway BEFORE INSERT OR UPDATE OF gateway ON pay.fee_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('gateway', 'pay.gateways', 'name');
CREATE TRIGGER fee_rules_currency BEFORE INSERT OR UPDATE OF currency ON pay.fee_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('currency', 'pay.currencies', 'code');
ALTER TABLE pay.fee_rules ENABLE ALWAYS TRIGGER fee_rules_gateway;
ALTER TABLE pay.fee_rules ENABLE ALWAYS TRIGGER fee_rules_currency;
-- history: a rule a payment was reconciled against must stay as it was
CREATE TRIGGER fee_rules_append_only BEFORE UPDATE OR DELETE ON pay.fee_rules
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
ALTER TABLE pay.fee_rules ENABLE ALWAYS TRIGGER fee_rules_append_only;

-- The rule in force for a gateway and currency at a time (NULL: none).
CREATE FUNCTION pay._fee_rule_at(p_gateway text, p_currency text, p_at timestamptz) RETURNS pay.fee_rules
LANGUAGE sql STABLE
RETURN (SELECT r FROM pay.fee_rules r
         WHERE r.gateway = p_gateway AND (r.currency = p_currency OR r.currency IS NULL)
           AND r.valid_from <= p_at
         ORDER BY r.currency IS NULL, r.valid_from DESC, r.id DESC LIMIT 1);

-- The fee of an amount under a rule: percent half-up (round() on numeric
-- rounds half away from zero, and the amount is a magnitude), plus fixed,
-- clamped to the rule's minimum and maximum (greatest/least skip a NULL
-- bound); 0 without a rule.
CREATE FUNCTION pay._fee_of(r pay.fee_rules, p_amount bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN r.id IS NULL OR p_amount IS NULL THEN 0
            ELSE greatest(r.minimum, least(r.maximum,
                   (round(abs(p_amount)::numeric * r.percent / 100, 0) + r.fixed)::bigint)) END;

CREATE FUNCTION pay._fee_at(p_gateway text, p_amount bigint, p_currency text, p_at timestamptz) RETURNS bigint
LANGUAGE sql STABLE
RETURN pay._fee_of(pay._fee_rule_at(p_gateway, p_currency, p_at), p_amount);

CREATE FUNCTION pay.set_fee(gateway text, currency text DEFAULT NULL, percent numeric DEFAULT 0,
                            fixed bigint DEFAULT 0, settlement_days integer DEFAULT 1,
                            minimum bigint DEFAULT NULL, maximum bigint DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pay.gateways g WHERE g.name = set_fee.gateway) THEN
    RAISE EXCEPTION 'gateway: unknown gateway "%"', gateway USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF currency IS NOT NULL THEN
    PERFORM pay._exponent(currency);
  END IF;
  IF percent IS NULL OR percent < 0 OR percent >= 100 THEN
    RAISE EXCEPTION 'percent must be at least 0 and below 100, not %', coalesce(percent::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF fixed IS NULL OR fixed < 0 THEN
    RAISE EXCEPTION 'fixed must be a non-negative number of minor units, not %', coalesce(fixed::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF settlement_days IS NULL OR settlement_days NOT BETWEEN 0 AND 365 THEN
    RAISE EXCEPTION 'settlement_days must be 0 to 365, not %', coalesce(settlement_days::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF minimum < 0 THEN
    RAISE EXCEPTION 'minimum must be a non-negative number of minor units or null, not %', minimum
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF maximum < 0 THEN
    RAISE EXCEPTION 'maximum must be a non-negative number of minor units or null, not %', maximum
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF maximum < minimum THEN
    RAISE EXCEPTION 'maximum (%) must not be below minimum (%)', maximum, minimum
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.fee_rules (gateway, currency, percent, fixed, settlement_days, minimum, maximum)
    VALUES (set_fee.gateway, set_fee.currency, set_fee.percent, set_fee.fixed, set_fee.settlement_days,
            set_fee.minimum, set_fee.maximum);
END $$;
COMMENT ON FUNCTION pay.set_fee(text, text, numeric, bigint, integer, bigint, bigint) IS
  'sets the fee rule of a gateway (for one currency, or NULL: any): percent (half-up to the minor unit) + fixed minor units, clamped to minimum/maximum minor units (NULL: none), settlement delay in days; valid from now, earlier payments keep the rule they were paid under';

CREATE FUNCTION pay.expected_fee(gateway text, amount bigint, currency text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF amount IS NULL OR amount < 0 THEN
    RAISE EXCEPTION 'amount must be a non-negative number of minor units, not %', coalesce(amount::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._exponent(currency);
  RETURN pay._fee_at(gateway, amount, currency, clock_timestamp());
END $$;
COMMENT ON FUNCTION pay.expected_fee(text, bigint, text) IS
  'the fee the gateway''s rule in force now charges on an amount (minor units, half-up, clamped to the rule''s minimum/maximum); 0 without a rule';

GRANT EXECUTE ON FUNCTION pay.set_fee(text, text, numeric, bigint, integer, bigint, bigint),
    pay.expected_fee(text, bigint, text) TO pay_admin;
