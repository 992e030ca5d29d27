-- PSP statements: the providers' own records of what moved, imported as
-- downloaded and read by header name, never by column position.
--
--   stripe_itemized_csv   Stripe's itemized balance-change report (UTF-8 CSV)
--   alipay_trade_bill     Alipay's 业务明细 bill (GBK, # comment lines, tab padding)
--   wechatpay_trade_bill  WeChat Pay's trade bill (backquoted values, summary block)
--   generic_csv           psp_txn_id,order_id,kind,amount,fee,currency,occurred_at
--
-- Every format is parsed into the same staging rows by one set-based
-- statement each (no row-at-a-time loop: a statement can have a million
-- lines); a malformed file is refused whole, naming the line and column,
-- before anything is written.  The staged lines are then classified and
-- stored by 89_reconciliation.sql.  A statement is identified by its
-- gateway and the SHA-256 of its bytes: the same file again is the same
-- statement, and importing it again changes nothing.

CREATE TABLE pay.statements (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway       text NOT NULL,            -- in pay.gateways: statements_gateway
    format        text NOT NULL CHECK (format IN ('stripe_itemized_csv', 'alipay_trade_bill',
                                                  'wechatpay_trade_bill', 'generic_csv')),
    content_sha256 bytea NOT NULL,
    content_bytes bigint NOT NULL,
    line_count    integer NOT NULL,
    period_start  timestamptz,
    period_end    timestamptz,
    period_declared boolean NOT NULL,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    imported_by   name NOT NULL DEFAULT session_user,
    UNIQUE (gateway, content_sha256)
);
COMMENT ON TABLE pay.statements IS
  'PSP statements imported by pay.import_statement: one row per (gateway, content); the period is the one the file declares, else its earliest to its latest line';
COMMENT ON COLUMN pay.statements.content_sha256 IS 'SHA-256 of the bytes as imported: the same bytes for the same gateway are the same statement';

CREATE TABLE pay.statement_lines (
    statement_id  bigint NOT NULL,          -- in pay.statements: statement_lines_statement
    line_no       integer NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('payment', 'refund', 'fee', 'payout', 'other')),
    psp_txn_id    text NOT NULL,
    order_id      bigint,
    amount        bigint NOT NULL CHECK (amount >= 0),
    fee           bigint NOT NULL CHECK (fee >= 0),
    currency      char(3) NOT NULL,
    occurred_at   timestamptz NOT NULL,
    result        text NOT NULL CHECK (result IN ('matched', 'missing_in_books', 'amount_mismatch',
                                                  'currency_mismatch', 'status_mismatch', 'fee_mismatch',
                                                  'duplicate')),
    payment_ref   text,
    refund_id     bigint,
    our_amount    bigint,
    expected_fee  bigint,
    source_line   integer NOT NULL,
    repaired_at   timestamptz,
    PRIMARY KEY (statement_id, line_no)
);
CREATE INDEX statement_lines_txn ON pay.statement_lines (psp_txn_id, kind);
CREATE INDEX statement_lines_order ON pay.statement_lines (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX statement_lines_refund ON pay.statement_lines (refund_id) WHERE refund_id IS NOT NULL;
-- the open breaks: few, read by every scrape of pay.metrics()
CREATE INDEX statement_lines_open ON pay.statement_lines (statement_id)
    WHERE result <> 'matched' AND repaired_at IS NULL;
COMMENT ON TABLE pay.statement_lines IS
  'every data line of every imported statement, classified against the books when it was imported (result); pay.reconciliation_breaks lists what is unexplained';
COMMENT ON COLUMN pay.statement_lines.line_no IS 'the data line''s number in its statement, from 1 (source_line: the line of the file, headers and comments counted)';
COMMENT ON COLUMN pay.statement_lines.kind IS 'payment, refund, fee (a charge of its own), payout, other (any other movement the PSP reports, e.g. Stripe adjustments)';
COMMENT ON COLUMN pay.statement_lines.psp_txn_id IS 'the PSP''s id of what the line reports: a payment''s transaction id (ours: pay.orders.psp_txn_id), a refund''s or payout''s own id';
COMMENT ON COLUMN pay.statement_lines.order_id IS 'our order the line matched; NULL when none';
COMMENT ON COLUMN pay.statement_lines.amount IS 'magnitude in minor units (the kind gives the direction)';
COMMENT ON COLUMN pay.statement_lines.fee IS 'what the PSP charged for the line, minor units';
COMMENT ON COLUMN pay.statement_lines.result IS
  'matched, missing_in_books, amount_mismatch, currency_mismatch, status_mismatch, fee_mismatch or duplicate (the first that applies in the order duplicate, missing_in_books, currency_mismatch, amount_mismatch, status_mismatch, fee_mismatch)';
COMMENT ON COLUMN pay.statement_lines.payment_ref IS 'the PSP''s id of the payment a refund (or any line) belongs to, when the format gives it';
COMMENT ON COLUMN pay.statement_lines.refund_id IS 'our refund (pay.refunds) that a refund line matched';
COMMENT ON COLUMN pay.statement_lines.our_amount IS 'the amount of ours the line was compared with (the order''s, or the refund''s)';
COMMENT ON COLUMN pay.statement_lines.expected_fee IS 'pay''s expected fee for a payment line: the gateway''s fee rule in force when the order was paid, applied to our amount (0 without a rule)';
COMMENT ON COLUMN pay.statement_lines.repaired_at IS 'when pay.repair_break booked the payment a missing_in_books line proved';

CREATE TRIGGER statements_gateway BEFORE INSERT OR UPDATE OF gateway ON pay.statements
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('gateway', 'pay.gateways', 'name');
CREATE TRIGGER statement_lines_statement BEFORE INSERT OR UPDATE OF statement_id ON pay.statement_lines
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('statement_id', 'pay.statements', 'id');
CREATE TRIGGER statements_lines BEFORE DELETE OR UPDATE OF id ON pay.statements
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('id', 'pay.statement_lines', 'statement_id');
ALTER TABLE pay.statements ENABLE ALWAYS TRIGGER statements_gateway;
ALTER TABLE pay.statement_lines ENABLE ALWAYS TRIGGER statement_lines_statement;
ALTER TABLE pay.statements ENABLE ALWAYS TRIGGER statements_lines;

-- A malformed statement: the whole file is refused, naming where.
CREATE FUNCTION pay._statement_refuse(p_line integer, p_column integer, p_name text, p_message text)
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'content: line %, column % (%): %', p_line, p_column, p_name, p_message
    USING ERRCODE = 'invalid_text_representation';
END $$;

-- The fields of one CSV line: split on commas, except inside double
-- quotes ("" is a quote).  Lines without a quote (nearly all) take the fast
-- path; a field that opens a quote it does not close is refused.
CREATE FUNCTION pay._csv_fields(p_line text, p_source_line integer) RETURNS text[]
LANGUAGE sql IMMUTABLE
RETURN CASE
  WHEN strpos(p_line, '"') = 0 THEN string_to_array(p_line, ',')
  ELSE ARRAY(
    SELECT CASE
             WHEN left(m[1], 1) <> '"' THEN m[1]
             WHEN length(m[1]) >= 2 AND right(m[1], 1) = '"' THEN replace(substr(m[1], 2, length(m[1]) - 2), '""', '"')
             ELSE pay._statement_refuse(p_source_line, n::integer, 'csv', 'a quoted field is not closed on its line')
           END
      FROM regexp_matches(p_line, '(?:^|,)("(?:[^"]|"")*"(?=,|$)|[^,]*)', 'g') WITH ORDINALITY AS t(m, n)
     ORDER BY n)
END;

-- The field helpers below are SQL functions the planner inlines into the
-- one statement that parses a file (a million calls through the function
-- executor would cost more than the parse).  They are VOLATILE only because
-- the planner inlines a function whose body may raise (through
-- _statement_refuse) only when it is not declared IMMUTABLE or STABLE.

-- Minor units from a decimal major-unit field (sign dropped: the kind
-- gives the direction), exactly; an empty field is 0 where p_empty_zero.
CREATE FUNCTION pay._statement_amount(p_text text, p_exponent smallint, p_line integer, p_column integer,
                                      p_name text, p_empty_zero boolean DEFAULT false)
RETURNS bigint
LANGUAGE sql VOLATILE
RETURN CASE
  WHEN p_text IS NULL OR p_text = '' THEN
    CASE WHEN p_empty_zero THEN 0
         ELSE pay._statement_refuse(p_line, p_column, p_name, 'an amount is required')::bigint END
  WHEN p_text !~ '^[-+]?[0-9]{1,15}(\.[0-9]{1,6})?$' THEN
    pay._statement_refuse(p_line, p_column, p_name, format('"%s" is not a decimal amount', left(p_text, 40)))::bigint
  WHEN abs(p_text::numeric) * (10::numeric ^ p_exponent) <> trunc(abs(p_text::numeric) * (10::numeric ^ p_exponent)) THEN
    pay._statement_refuse(p_line, p_column, p_name, format('"%s" has more decimals than the currency''s %s', p_text, p_exponent))::bigint
  ELSE (abs(p_text::numeric) * (10::numeric ^ p_exponent))::bigint
END;

-- A timestamp field: ISO 8601 (date, time, optional fraction and offset).
-- Without an offset it is in p_zone (UTC for Stripe and generic files,
-- Asia/Shanghai for Alipay and WeChat Pay, as they write them).
CREATE FUNCTION pay._statement_time(p_text text, p_zone text, p_line integer, p_column integer, p_name text)
RETURNS timestamptz
LANGUAGE sql VOLATILE
RETURN CASE
  WHEN p_text !~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$' THEN
    pay._statement_refuse(p_line, p_column, p_name, format('"%s" is not an ISO 8601 time', left(coalesce(p_text, ''), 40)))::timestamptz
  WHEN p_text ~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' AND p_text ~ '[T ]' THEN p_text::timestamptz
  ELSE p_text::timestamp AT TIME ZONE p_zone
END;

-- The column of a header name (1-based), or the file is refused.
CREATE FUNCTION pay._statement_column(p_header text[], p_name text, p_line integer) RETURNS integer
LANGUAGE sql IMMUTABLE
RETURN coalesce(array_position(p_header, p_name),
                pay._statement_refuse(p_line, 0, p_name, 'the header has no such column')::integer);

-- The format of a statement from its first lines.
CREATE FUNCTION pay._statement_detect(p_content bytea) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_head text;
BEGIN
  BEGIN
    v_head := convert_from(substr(p_content, 1, 4096), 'UTF8');
  EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    -- 4096 bytes may end inside a character: try again without its tail
    BEGIN
      v_head := convert_from(substr(p_content, 1, 4093), 'UTF8');
    EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
      v_head := NULL;
    END;
  END;
  IF v_head IS NULL THEN
    BEGIN
      v_head := convert_from(substr(p_content, 1, 4096), 'GBK');
    EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
      v_head := NULL;
    END;
  END IF;
  RETURN CASE
    WHEN v_head IS NULL THEN NULL
    WHEN v_head ~ '(^|\n)\ufeff?balance_transaction_id,|,balance_transaction_id(,|\r?\n)'
         AND v_head ~ 'reporting_category' THEN 'stripe_itemized_csv'
    WHEN v_head ~ '(^|\n)\ufeff?psp_txn_id,' THEN 'generic_csv'
    WHEN v_head ~ '微信订单号' THEN 'wechatpay_trade_bill'
    WHEN v_head ~ '支付宝交易号' THEN 'alipay_trade_bill'
  END;
END $$;

-- The content as text: UTF-8 (a byte-order mark dropped), Alipay's bill in
-- GBK as Alipay serves it (or UTF-8 when it is valid UTF-8 naming its columns).
CREATE FUNCTION pay._statement_text(p_content bytea, p_format text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_text text;
BEGIN
  BEGIN
    v_text := convert_from(p_content, 'UTF8');
  EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    v_text := NULL;
  END;
  IF p_format = 'alipay_trade_bill' AND (v_text IS NULL OR strpos(v_text, '支付宝交易号') = 0) THEN
    BEGIN
      v_text := convert_from(p_content, 'GBK');
    EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
      RAISE EXCEPTION 'content: not valid GBK (as Alipay serves its bills) nor UTF-8'
        USING ERRCODE = 'character_not_in_repertoire';
    END;
  ELSIF v_text IS NULL THEN
    RAISE EXCEPTION 'content: not valid UTF-8' USING ERRCODE = 'character_not_in_repertoire';
  END IF;
  RETURN regexp_replace(v_text, '^\ufeff', '');
END $$;
