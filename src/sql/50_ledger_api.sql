-- Ledger functions: opening accounts, posting balanced entries, balances.
--
-- Internal helpers (names beginning with "_") run only inside SECURITY
-- DEFINER functions, whose search_path is already pinned, and no role may
-- execute them directly; so they carry no SET clause of their own (one costs
-- a settings save and restore on every call and keeps SQL functions from
-- being inlined).

CREATE FUNCTION pay._backend_slot(slots integer) RETURNS integer
    AS 'MODULE_PATHNAME', 'pay_backend_slot' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._backend_slot(integer) IS
  'the balance slot this backend writes: its dense backend number modulo slots, so concurrent backends spread evenly';

-- Find or open the account that books a party's money in one currency (the
-- accounts of merchants and gateways are opened on first use).  pay._account
-- answers from a per-backend cache (src/lookup_cache.c: accounts never change
-- once committed) and calls _account_open on a miss.
CREATE FUNCTION pay._account_open(p_code text, p_currency char(3)) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  SELECT id INTO v_id FROM pay.accounts WHERE code = p_code;
  IF FOUND THEN
    RETURN v_id;
  END IF;
  -- Two first payments may race: ON CONFLICT waits for the other to commit.
  INSERT INTO pay.accounts (code, currency, slots) VALUES (p_code, p_currency, 8)
    ON CONFLICT (code) DO NOTHING RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT id INTO STRICT v_id FROM pay.accounts WHERE code = p_code;
  ELSE
    INSERT INTO pay.account_balances (account_id, slot)
      SELECT v_id, s FROM generate_series(0, 7) s;
  END IF;
  RETURN v_id;
END $$;
CREATE FUNCTION pay._account(p_code text, p_currency char(3)) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_account' LANGUAGE C VOLATILE;
CREATE FUNCTION pay._merchant_account(p_merchant_id bigint, p_currency char(3)) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_merchant_account' LANGUAGE C VOLATILE;

-- The core of every posting (src/ledger_post.c): lines already resolved to
-- account ids.  Checks the balance per currency (PY004), writes the posting
-- and its entries, then moves the balances in account-id order (a fixed lock
-- order, so two postings can never deadlock on each other's accounts) and
-- refuses to take a non-negative account below zero (PY003).
CREATE FUNCTION pay._post(p_ref text, p_order_id bigint, p_accounts bigint[], p_amounts bigint[])
RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_post' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.open_account(code text, currency text, non_negative boolean DEFAULT false,
                                 slots integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  v_slots integer := coalesce(slots, CASE WHEN non_negative THEN 1 ELSE 8 END);
BEGIN
  IF code IS NULL OR code !~ '^[A-Za-z0-9_.:@-]{1,128}$' THEN
    RAISE EXCEPTION 'code must be 1 to 128 letters, digits or _.:@-'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The system's own accounts open on first use, in the currency of what
  -- they book (pay._account_open); one opened ahead by the application in
  -- another currency, or non-negative, would refuse every later payment.
  -- The caller is the outer role: current_user is the owner here.
  IF code ~* '^(merchant|psp|fees|bank):'
     AND NOT pg_has_role(pay._outer_role(), 'pay_admin', 'MEMBER')
     AND NOT pg_has_role(pay._outer_role(),
                         (SELECT c.relowner FROM pg_class c WHERE c.oid = 'pay.accounts'::regclass), 'USAGE') THEN
    RAISE EXCEPTION 'code: account "%" is under a system prefix (merchant:, psp:, fees:, bank:); only pay_admin may open it',
      code USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pay.currencies c WHERE c.code = currency) THEN
    RAISE EXCEPTION 'unknown currency "%"', currency USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF non_negative IS NULL THEN
    RAISE EXCEPTION 'non_negative must not be null' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_slots NOT BETWEEN 1 AND 64 OR (non_negative AND v_slots <> 1) THEN
    RAISE EXCEPTION 'slots must be between 1 and 64, and 1 for a non-negative account'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.accounts (code, currency, non_negative, slots)
    VALUES (open_account.code, open_account.currency, open_account.non_negative, v_slots)
    RETURNING id INTO v_id;
  INSERT INTO pay.account_balances (account_id, slot)
    SELECT v_id, s FROM generate_series(0, v_slots - 1) s;
  RETURN v_id;
END $$;
COMMENT ON FUNCTION pay.open_account(text, text, boolean, integer) IS
  'opens a ledger account; non_negative accounts (wallets) can never go below zero. Codes under merchant:, psp:, fees:, bank: (any case) are the system''s: pay_admin only';

CREATE FUNCTION pay.post(ref text, lines jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_accounts bigint[] := '{}';
  v_amounts bigint[] := '{}';
  v_line jsonb;
  v_amount numeric;
  v_account bigint;
  i integer := 0;
BEGIN
  IF ref IS NULL OR length(ref) NOT BETWEEN 1 AND 200 THEN
    RAISE EXCEPTION 'ref must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF lines IS NULL OR jsonb_typeof(lines) <> 'array' THEN
    RAISE EXCEPTION 'lines must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_array_length(lines) NOT BETWEEN 2 AND 100 THEN
    RAISE EXCEPTION 'lines must have between 2 and 100 entries, not %', jsonb_array_length(lines)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR v_line IN SELECT value FROM jsonb_array_elements(lines) LOOP
    i := i + 1;
    IF jsonb_typeof(v_line) <> 'object' OR jsonb_typeof(v_line->'account') IS DISTINCT FROM 'string' THEN
      RAISE EXCEPTION 'lines[%].account must be a string', i USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(v_line->'amount') IS DISTINCT FROM 'number' THEN
      RAISE EXCEPTION 'lines[%].amount must be a number', i USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_amount := (v_line->'amount')::numeric;
    IF v_amount <> trunc(v_amount) THEN
      RAISE EXCEPTION 'lines[%].amount must be a whole number of minor units, not %', i, v_amount
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_amount NOT BETWEEN -9223372036854775807 AND 9223372036854775807 THEN
      RAISE EXCEPTION 'lines[%].amount % is out of range', i, v_amount
        USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    IF v_amount = 0 THEN
      RAISE EXCEPTION 'lines[%].amount must not be zero', i USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.id INTO v_account FROM pay.accounts a WHERE a.code = v_line->>'account';
    IF NOT FOUND THEN
      RAISE EXCEPTION 'lines[%].account: unknown account "%"', i, v_line->>'account'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_accounts := v_accounts || v_account;
    v_amounts := v_amounts || v_amount::bigint;
  END LOOP;
  RETURN pay._post(ref, NULL, v_accounts, v_amounts);
END $$;
COMMENT ON FUNCTION pay.post(text, jsonb) IS
  'posts balanced ledger lines [{"account": code, "amount": signed minor units}, ...]; ref is unique';

CREATE FUNCTION pay.balance(account text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  v_balance numeric;
BEGIN
  SELECT id INTO v_id FROM pay.accounts WHERE code = account;
  -- to a role bound to other merchants (53_merchant_binding.sql), another
  -- merchant's account does not exist
  IF FOUND AND account ~* '^merchant:'
     AND NOT pay._acts_for((SELECT m.id FROM pay.merchants m WHERE m.code = split_part(account, ':', 2))) THEN
    v_id := NULL;
  END IF;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'unknown account "%"', account USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT sum(b.balance) INTO v_balance FROM pay.account_balances b WHERE b.account_id = v_id;
  RETURN v_balance::bigint;
END $$;
COMMENT ON FUNCTION pay.balance(text) IS 'an account''s balance: the sum of its entries, in minor units';

CREATE FUNCTION pay.available_balance(account text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_balance bigint := pay.balance(account);   -- the same errors, the same binding rule
BEGIN
  RETURN v_balance - (SELECT sum(b.held) FROM pay.account_balances b JOIN pay.accounts a ON a.id = b.account_id
                       WHERE a.code = available_balance.account)::bigint;
END $$;
COMMENT ON FUNCTION pay.available_balance(text) IS
  'an account''s balance less what its open holds reserve: what a payment or a new hold may spend';

-- For DBAs: every way the ledger could be inconsistent.  Empty when sound.
CREATE VIEW pay.ledger_problems AS
  SELECT 'posting does not balance'::text AS problem, p.ref AS subject,
         format('%s sums to %s', e.currency, sum(e.amount)) AS detail
    FROM pay.postings p JOIN pay.entries e ON e.posting_id = p.id
   GROUP BY p.ref, e.currency HAVING sum(e.amount) <> 0
  UNION ALL
  SELECT 'balance differs from entries', a.code,
         format('balance %s, entries %s', b.total, coalesce(e.total, 0))
    FROM pay.accounts a
    JOIN (SELECT account_id, sum(balance) AS total FROM pay.account_balances GROUP BY account_id) b
      ON b.account_id = a.id
    LEFT JOIN (SELECT account_id, sum(amount) AS total FROM pay.entries GROUP BY account_id) e
      ON e.account_id = a.id
   WHERE b.total <> coalesce(e.total, 0)
  UNION ALL
  SELECT 'non-negative account below zero', a.code, format('balance %s', b.balance)
    FROM pay.accounts a JOIN pay.account_balances b ON b.account_id = a.id
   WHERE a.non_negative AND b.balance < 0
  UNION ALL
  SELECT 'holds exceed the balance', a.code, format('balance %s, held %s', b.balance, b.held)
    FROM pay.accounts a JOIN pay.account_balances b ON b.account_id = a.id
   WHERE b.held < 0 OR (a.non_negative AND b.held > b.balance)
  UNION ALL
  SELECT 'held differs from open holds', a.code, format('held %s, open holds %s', b.total, coalesce(h.total, 0))
    FROM pay.accounts a
    JOIN (SELECT account_id, sum(held) AS total FROM pay.account_balances GROUP BY account_id) b
      ON b.account_id = a.id
    LEFT JOIN (SELECT h.account_id, sum(h.amount) AS total FROM pay.holds h
                WHERE NOT EXISTS (SELECT 1 FROM pay.hold_releases r WHERE r.hold_id = h.id)
                GROUP BY h.account_id) h ON h.account_id = a.id
   WHERE b.total <> coalesce(h.total, 0)
  UNION ALL
  SELECT 'capture beyond its hold', h.order_id::text, format('held %s, captured %s', h.amount, r.captured)
    FROM pay.holds h JOIN pay.hold_releases r ON r.hold_id = h.id
   WHERE r.captured > h.amount;
COMMENT ON VIEW pay.ledger_problems IS 'ledger invariants that do not hold; empty when the ledger is sound';
