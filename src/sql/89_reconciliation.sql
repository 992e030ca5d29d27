-- Reconciliation: statement lines classified against the books, the breaks,
-- what the statements prove booked once (PSP fees, payouts), the settlement
-- per gateway, currency and day, and the repair of a payment the PSP proves
-- that the books miss.
--
-- Sign convention of the ledger (40_ledger.sql): a payment books the PSP's
-- clearing account psp:<gateway>:<CUR> negative, the merchant positive.
-- Where money is (at the PSP, at the bank) or went (PSP fees) is negative;
-- so a fee the PSP kept books fees:<gateway>:<CUR> -fee, psp +fee, and a
-- payout bank:<gateway>:<CUR> -amount, psp +amount.  After a full cycle the
-- clearing account's balance is minus what the PSP still holds for us.

-- The lines of one file, staged for classification (one transaction).
CREATE FUNCTION pay._statement_stage(p_format text, p_text text, OUT declared_start timestamptz,
                                     OUT declared_end timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
  v_header text[];
  v_header_line integer;
  v_end_line integer;
  v_bad record;
  c integer[];
BEGIN
  -- left by an earlier import in this transaction
  IF to_regclass('pg_temp.pay_statement_stage') IS NOT NULL THEN
    DROP TABLE pg_temp.pay_statement_stage;
  END IF;
  CREATE TEMP TABLE pay_statement_raw (n integer, line text) ON COMMIT DROP;
  CREATE TEMP TABLE pay_statement_stage (
      line_no integer, source_line integer, kind text, psp_txn_id text, payment_ref text,
      order_ref text, amount bigint, fee bigint, currency char(3), occurred_at timestamptz) ON COMMIT DROP;

  INSERT INTO pg_temp.pay_statement_raw
    SELECT t.n, rtrim(t.line, E'\r')
      FROM string_to_table(p_text, E'\n') WITH ORDINALITY AS t(line, n)
     WHERE rtrim(t.line, E'\r\t ') <> ''
       AND NOT (p_format = 'alipay_trade_bill' AND left(t.line, 1) = '#');

  IF p_format = 'alipay_trade_bill' THEN
    -- #起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]
    SELECT to_timestamp(m[1] || '-' || m[2] || '-' || m[3] || ' ' || m[4], 'YYYY-MM-DD HH24:MI:SS')::timestamp
             AT TIME ZONE 'Asia/Shanghai',
           to_timestamp(m[5] || '-' || m[6] || '-' || m[7] || ' ' || m[8], 'YYYY-MM-DD HH24:MI:SS')::timestamp
             AT TIME ZONE 'Asia/Shanghai'
      INTO declared_start, declared_end
      FROM regexp_matches(p_text,
        '起始日期：\[([0-9]{4})年([0-9]{2})月([0-9]{2})日 ([0-9]{2}:[0-9]{2}:[0-9]{2})\][^\n]*终止日期：\[([0-9]{4})年([0-9]{2})月([0-9]{2})日 ([0-9]{2}:[0-9]{2}:[0-9]{2})\]') AS m;
  END IF;

  SELECT r.n INTO v_header_line FROM pg_temp.pay_statement_raw r ORDER BY r.n LIMIT 1;
  IF v_header_line IS NULL THEN
    RAISE EXCEPTION 'content: no header line' USING ERRCODE = 'invalid_text_representation';
  END IF;
  SELECT array_agg(btrim(h, E'\t `\ufeff') ORDER BY o) INTO v_header
    FROM unnest(pay._csv_fields((SELECT line FROM pg_temp.pay_statement_raw WHERE n = v_header_line), v_header_line))
         WITH ORDINALITY AS x(h, o);
  v_end_line := 2147483647;
  IF p_format = 'wechatpay_trade_bill' THEN
    -- the summary block: its own header (总交易单数,...) and one row of totals
    SELECT coalesce(min(n), v_end_line) INTO v_end_line FROM pg_temp.pay_statement_raw
     WHERE n > v_header_line AND line ~ '^`?总交易单数';
  END IF;

  -- fields, trimmed of the padding each format adds; every line as wide as the header
  CREATE TEMP TABLE pay_statement_fields ON COMMIT DROP AS
    SELECT (row_number() OVER (ORDER BY r.n))::integer AS line_no, r.n AS source_line,
           CASE WHEN p_format IN ('alipay_trade_bill', 'wechatpay_trade_bill')
                THEN ARRAY(SELECT btrim(x, E'\t `') FROM unnest(pay._csv_fields(r.line, r.n)) x)
                -- most lines have no quote: split them here, not in a function call
                WHEN strpos(r.line, '"') = 0 THEN string_to_array(r.line, ',')
                ELSE pay._csv_fields(r.line, r.n) END AS f
      FROM pg_temp.pay_statement_raw r
     WHERE r.n > v_header_line AND r.n < v_end_line;
  SELECT x.source_line, cardinality(x.f) AS width INTO v_bad
    FROM pg_temp.pay_statement_fields x WHERE cardinality(x.f) <> cardinality(v_header)
   ORDER BY x.source_line LIMIT 1;
  IF FOUND THEN
    PERFORM pay._statement_refuse(v_bad.source_line, least(v_bad.width, cardinality(v_header)) + 1, 'csv',
      format('%s fields, the header has %s', v_bad.width, cardinality(v_header)));
  END IF;

  CASE p_format
  WHEN 'generic_csv' THEN
    c := ARRAY[pay._statement_column(v_header, 'psp_txn_id', v_header_line),
               pay._statement_column(v_header, 'order_id', v_header_line),
               pay._statement_column(v_header, 'kind', v_header_line),
               pay._statement_column(v_header, 'amount', v_header_line),
               pay._statement_column(v_header, 'fee', v_header_line),
               pay._statement_column(v_header, 'currency', v_header_line),
               pay._statement_column(v_header, 'occurred_at', v_header_line)];
    INSERT INTO pg_temp.pay_statement_stage
    SELECT x.line_no, x.source_line,
           CASE WHEN x.f[c[3]] IN ('payment', 'refund', 'fee', 'payout') THEN x.f[c[3]]
                ELSE pay._statement_refuse(x.source_line, c[3], 'kind',
                       format('"%s" is not payment, refund, fee or payout', left(x.f[c[3]], 40))) END,
           CASE WHEN length(x.f[c[1]]) BETWEEN 1 AND 128 THEN x.f[c[1]]
                ELSE pay._statement_refuse(x.source_line, c[1], 'psp_txn_id', 'must be 1 to 128 characters') END,
           NULL, nullif(x.f[c[2]], ''),
           pay._statement_amount(x.f[c[4]], e.exponent, x.source_line, c[4], 'amount'),
           pay._statement_amount(x.f[c[5]], e.exponent, x.source_line, c[5], 'fee', true),
           upper(x.f[c[6]]),
           pay._statement_time(x.f[c[7]], 'UTC', x.source_line, c[7], 'occurred_at')
      FROM pg_temp.pay_statement_fields x
     LEFT JOIN pay.currencies cur ON cur.code = upper(x.f[c[6]])
     CROSS JOIN LATERAL (SELECT CASE WHEN cur.code IS NOT NULL THEN cur.exponent
              ELSE pay._statement_refuse(x.source_line, c[6], 'currency',
                     format('"%s" is not a known currency', left(x.f[c[6]], 40)))::smallint END AS exponent) e;

  WHEN 'stripe_itemized_csv' THEN
    c := ARRAY[pay._statement_column(v_header, 'balance_transaction_id', v_header_line),
               pay._statement_column(v_header, 'created_utc', v_header_line),
               pay._statement_column(v_header, 'currency', v_header_line),
               pay._statement_column(v_header, 'gross', v_header_line),
               pay._statement_column(v_header, 'fee', v_header_line),
               pay._statement_column(v_header, 'reporting_category', v_header_line),
               pay._statement_column(v_header, 'source_id', v_header_line),
               array_position(v_header, 'payment_intent_id'),
               array_position(v_header, 'payment_metadata[order_id]')];
    INSERT INTO pg_temp.pay_statement_stage
    SELECT x.line_no, x.source_line, k.kind,
           CASE WHEN k.kind = 'payment' THEN coalesce(nullif(x.f[c[8]], ''), nullif(x.f[c[7]], ''), x.f[c[1]])
                ELSE coalesce(nullif(x.f[c[7]], ''), x.f[c[1]]) END,
           nullif(x.f[c[8]], ''), nullif(x.f[c[9]], ''),
           pay._statement_amount(x.f[c[4]], e.exponent, x.source_line, c[4], 'gross'),
           pay._statement_amount(x.f[c[5]], e.exponent, x.source_line, c[5], 'fee', true),
           upper(x.f[c[3]]),
           pay._statement_time(x.f[c[2]], 'UTC', x.source_line, c[2], 'created_utc')
      FROM pg_temp.pay_statement_fields x
     LEFT JOIN pay.currencies cur ON cur.code = upper(x.f[c[3]])
     CROSS JOIN LATERAL (SELECT CASE WHEN cur.code IS NOT NULL THEN cur.exponent
              ELSE pay._statement_refuse(x.source_line, c[3], 'currency',
                     format('"%s" is not a known currency', left(x.f[c[3]], 40)))::smallint END AS exponent) e
     CROSS JOIN LATERAL (SELECT CASE
              WHEN length(x.f[c[1]]) NOT BETWEEN 1 AND 128 THEN
                pay._statement_refuse(x.source_line, c[1], 'balance_transaction_id', 'must be 1 to 128 characters')
              WHEN x.f[c[6]] IN ('charge', 'payment') THEN 'payment'
              WHEN x.f[c[6]] IN ('refund', 'payout', 'fee') THEN x.f[c[6]]
              WHEN x.f[c[6]] = '' THEN pay._statement_refuse(x.source_line, c[6], 'reporting_category', 'is empty')
              ELSE 'other' END AS kind) k;

  WHEN 'alipay_trade_bill' THEN
    c := ARRAY[pay._statement_column(v_header, '支付宝交易号', v_header_line),
               pay._statement_column(v_header, '商户订单号', v_header_line),
               pay._statement_column(v_header, '业务类型', v_header_line),
               pay._statement_column(v_header, '完成时间', v_header_line),
               pay._statement_column(v_header, '订单金额（元）', v_header_line),
               pay._statement_column(v_header, '服务费（元）', v_header_line),
               pay._statement_column(v_header, '退款批次号/请求号', v_header_line),
               pay._statement_column(v_header, '创建时间', v_header_line)];
    INSERT INTO pg_temp.pay_statement_stage
    SELECT x.line_no, x.source_line, k.kind,
           CASE WHEN k.kind = 'refund' THEN coalesce(nullif(x.f[c[7]], ''), x.f[c[1]]) ELSE x.f[c[1]] END,
           x.f[c[1]], nullif(x.f[c[2]], ''),
           pay._statement_amount(x.f[c[5]], 2::smallint, x.source_line, c[5], '订单金额（元）'),
           pay._statement_amount(x.f[c[6]], 2::smallint, x.source_line, c[6], '服务费（元）', true),
           'CNY',
           CASE WHEN x.f[c[4]] <> '' THEN pay._statement_time(x.f[c[4]], 'Asia/Shanghai', x.source_line, c[4], '完成时间')
                ELSE pay._statement_time(x.f[c[8]], 'Asia/Shanghai', x.source_line, c[8], '创建时间') END
      FROM pg_temp.pay_statement_fields x
     CROSS JOIN LATERAL (SELECT CASE
              WHEN length(x.f[c[1]]) NOT BETWEEN 1 AND 128 THEN
                pay._statement_refuse(x.source_line, c[1], '支付宝交易号', 'must be 1 to 128 characters')
              WHEN x.f[c[3]] = '交易' THEN 'payment'
              WHEN x.f[c[3]] = '退款' THEN 'refund'
              ELSE 'other' END AS kind) k;

  WHEN 'wechatpay_trade_bill' THEN
    c := ARRAY[pay._statement_column(v_header, '交易时间', v_header_line),
               pay._statement_column(v_header, '微信订单号', v_header_line),
               pay._statement_column(v_header, '商户订单号', v_header_line),
               pay._statement_column(v_header, '交易状态', v_header_line),
               pay._statement_column(v_header, '应结订单金额', v_header_line),
               pay._statement_column(v_header, '退款金额', v_header_line),
               pay._statement_column(v_header, '手续费', v_header_line),
               pay._statement_column(v_header, '微信退款单号', v_header_line),
               pay._statement_column(v_header, '货币种类', v_header_line)];
    INSERT INTO pg_temp.pay_statement_stage
    SELECT x.line_no, x.source_line, k.kind,
           CASE WHEN k.kind = 'refund' THEN coalesce(nullif(x.f[c[8]], ''), x.f[c[2]]) ELSE x.f[c[2]] END,
           x.f[c[2]], nullif(ltrim(x.f[c[3]], '0'), ''),
           CASE WHEN k.kind = 'refund'
                THEN pay._statement_amount(x.f[c[6]], e.exponent, x.source_line, c[6], '退款金额')
                ELSE pay._statement_amount(x.f[c[5]], e.exponent, x.source_line, c[5], '应结订单金额') END,
           pay._statement_amount(x.f[c[7]], e.exponent, x.source_line, c[7], '手续费', true),
           upper(coalesce(nullif(x.f[c[9]], ''), 'CNY')),
           pay._statement_time(x.f[c[1]], 'Asia/Shanghai', x.source_line, c[1], '交易时间')
      FROM pg_temp.pay_statement_fields x
     LEFT JOIN pay.currencies cur ON cur.code = upper(coalesce(nullif(x.f[c[9]], ''), 'CNY'))
     CROSS JOIN LATERAL (SELECT CASE WHEN cur.code IS NOT NULL THEN cur.exponent
              ELSE pay._statement_refuse(x.source_line, c[9], '货币种类',
                     format('"%s" is not a known currency', left(coalesce(nullif(x.f[c[9]], ''), 'CNY'), 40)))::smallint END AS exponent) e
     CROSS JOIN LATERAL (SELECT CASE
              WHEN length(x.f[c[2]]) NOT BETWEEN 1 AND 128 THEN
                pay._statement_refuse(x.source_line, c[2], '微信订单号', 'must be 1 to 128 characters')
              WHEN x.f[c[4]] = 'SUCCESS' THEN 'payment'
              WHEN x.f[c[4]] = 'REFUND' THEN 'refund'
              ELSE 'other' END AS kind) k;
  END CASE;
  DROP TABLE pg_temp.pay_statement_fields;
  DROP TABLE pg_temp.pay_statement_raw;
END $$;

-- Classify the staged lines of a statement and store them (one statement).
-- The first result that applies wins, in the order: duplicate,
-- missing_in_books, currency_mismatch, amount_mismatch, status_mismatch,
-- fee_mismatch; else matched.
--   duplicate         an earlier line (this statement's, or any earlier
--                     statement's of the gateway) has the same psp_txn_id and kind
--   missing_in_books  no order of the gateway matches; a payment for an
--                     order not paid (pending, failed); a refund no refund
--                     of ours matches; any other movement (kind other)
--   currency_mismatch the order is in another currency
--   amount_mismatch   a payment's amount is not what the order paid (its
--                     captured amount, else its amount); a refund's
--                     amount is none of the order's unmatched refunds'
--   status_mismatch   a payment for an order cancelled, or paid by another
--                     transaction
--   fee_mismatch      the PSP's fee on a payment is not pay's expected fee
-- An order is found as the callbacks find it: our order id as the
-- merchant's reference, else the PSP's transaction id of the payment.
-- A refund line takes one of the order's refunds of the same amount that
-- no line has taken yet, in order (the n-th line of an amount the n-th refund).
CREATE FUNCTION pay._statement_classify(p_statement bigint, p_gateway text) RETURNS void
LANGUAGE sql AS $$
  WITH lines AS (
    SELECT s.*, o.id AS order_id, o.amount AS order_amount, o.currency AS order_currency,
           o.status AS order_status, o.paid_at, o.psp_txn_id AS order_txn,
           (row_number() OVER (PARTITION BY s.psp_txn_id, s.kind ORDER BY s.line_no) > 1
            OR EXISTS (SELECT 1 FROM pay.statement_lines l JOIN pay.statements t ON t.id = l.statement_id
                        WHERE l.psp_txn_id = s.psp_txn_id AND l.kind = s.kind AND t.gateway = p_gateway)) AS dup
      FROM pg_temp.pay_statement_stage s
      LEFT JOIN pay.orders by_ref
        ON s.kind IN ('payment', 'refund') AND s.order_ref ~ '^[0-9]{1,18}$'
       AND by_ref.id = (CASE WHEN s.order_ref ~ '^[0-9]{1,18}$' THEN s.order_ref::bigint END)
       AND by_ref.gateway = p_gateway
      LEFT JOIN pay.orders by_txn
        ON s.kind IN ('payment', 'refund') AND by_ref.id IS NULL AND by_txn.gateway = p_gateway
       AND by_txn.psp_txn_id = coalesce(s.payment_ref, s.psp_txn_id)
      CROSS JOIN LATERAL (SELECT coalesce(by_ref.id, by_txn.id) AS id,
                                 -- what the order paid: a capture may take less than was authorized
                                 CASE WHEN by_ref.id IS NOT NULL THEN coalesce(by_ref.captured_amount, by_ref.amount)
                                      ELSE coalesce(by_txn.captured_amount, by_txn.amount) END AS amount,
                                 coalesce(by_ref.currency, by_txn.currency) AS currency,
                                 coalesce(by_ref.status, by_txn.status) AS status,
                                 CASE WHEN by_ref.id IS NOT NULL THEN by_ref.paid_at ELSE by_txn.paid_at END AS paid_at,
                                 CASE WHEN by_ref.id IS NOT NULL THEN by_ref.psp_txn_id ELSE by_txn.psp_txn_id END
                                   AS psp_txn_id) o
  ),
  -- refund lines that can take a refund of ours, numbered per order and amount
  refund_lines AS (
    SELECT l.line_no, l.order_id, l.amount,
           row_number() OVER (PARTITION BY l.order_id, l.amount ORDER BY l.line_no) AS nth
      FROM lines l
     WHERE l.kind = 'refund' AND NOT l.dup AND l.order_id IS NOT NULL AND l.currency = l.order_currency
  ),
  open_refunds AS (
    SELECT r.id, r.order_id, r.amount,
           row_number() OVER (PARTITION BY r.order_id, r.amount ORDER BY r.id) AS nth
      FROM pay.refunds r
     WHERE r.order_id IN (SELECT order_id FROM refund_lines)
       AND NOT EXISTS (SELECT 1 FROM pay.statement_lines x WHERE x.refund_id = r.id)
  ),
  paired AS (
    SELECT rl.line_no, orf.id AS refund_id, orf.amount
      FROM refund_lines rl JOIN open_refunds orf USING (order_id, amount, nth)
  ),
  classified AS (
    SELECT l.*, p.refund_id,
           CASE WHEN l.kind = 'payment' THEN pay._fee_of(fr.r, l.order_amount) END AS expected,
           -- a refund line's: the refund it took, else the order's first refund no line took
           CASE WHEN l.kind = 'refund'
                THEN coalesce(p.amount, (SELECT orf.amount FROM open_refunds orf
                                          WHERE orf.order_id = l.order_id
                                            AND orf.id NOT IN (SELECT x.refund_id FROM paired x)
                                          ORDER BY orf.id LIMIT 1))
                ELSE l.order_amount END AS ours
      FROM lines l LEFT JOIN paired p USING (line_no)
      -- the fee rule in force when the order was paid (pay._fee_rule_at, as a join)
      LEFT JOIN LATERAL (
        SELECT r FROM pay.fee_rules r
         WHERE l.kind = 'payment' AND l.order_id IS NOT NULL
           AND r.gateway = p_gateway AND (r.currency = l.order_currency OR r.currency IS NULL)
           AND r.valid_from <= coalesce(l.paid_at, l.occurred_at)
         ORDER BY r.currency IS NULL, r.valid_from DESC, r.id DESC LIMIT 1) fr ON true
  )
  INSERT INTO pay.statement_lines (statement_id, line_no, kind, psp_txn_id, order_id, amount, fee, currency,
                                   occurred_at, result, payment_ref, refund_id, our_amount, expected_fee, source_line)
  SELECT p_statement, c.line_no, c.kind, c.psp_txn_id, c.order_id, c.amount, c.fee, c.currency, c.occurred_at,
         CASE
           WHEN c.dup THEN 'duplicate'
           WHEN c.kind IN ('fee', 'payout') THEN 'matched'
           WHEN c.kind = 'other' OR c.order_id IS NULL THEN 'missing_in_books'
           WHEN c.kind = 'payment' AND c.paid_at IS NULL AND c.order_status IN ('pending', 'failed') THEN 'missing_in_books'
           WHEN c.kind = 'refund' AND c.refund_id IS NULL AND c.currency = c.order_currency
                AND NOT EXISTS (SELECT 1 FROM open_refunds orf WHERE orf.order_id = c.order_id AND orf.amount <> c.amount)
             THEN 'missing_in_books'
           WHEN c.currency <> c.order_currency THEN 'currency_mismatch'
           WHEN c.kind = 'payment' AND c.amount <> c.order_amount THEN 'amount_mismatch'
           WHEN c.kind = 'refund' AND c.refund_id IS NULL THEN 'amount_mismatch'
           WHEN c.kind = 'payment' AND (c.paid_at IS NULL OR c.order_txn IS DISTINCT FROM c.psp_txn_id) THEN 'status_mismatch'
           WHEN c.kind = 'payment' AND c.fee <> c.expected THEN 'fee_mismatch'
           ELSE 'matched'
         END,
         c.payment_ref, c.refund_id, CASE WHEN c.order_id IS NOT NULL THEN c.ours END,
         CASE WHEN c.order_id IS NOT NULL THEN c.expected END, c.source_line
    FROM classified c;
$$;

-- What a statement proves, booked once: the PSP's fees on its matched (and
-- fee_mismatch) payments and its own fee lines, and its payouts; one
-- posting per statement, currency and kind (postings' refs are unique).
-- Lines that are duplicates of earlier lines are not booked again.
CREATE FUNCTION pay._statement_book(p_statement bigint, p_gateway text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT l.currency,
           sum(CASE WHEN l.kind = 'payment' AND l.result IN ('matched', 'fee_mismatch') THEN l.fee
                    WHEN l.kind = 'fee' AND l.result = 'matched' THEN l.amount ELSE 0 END)::bigint AS fees,
           sum(CASE WHEN l.kind = 'payout' AND l.result = 'matched' THEN l.amount ELSE 0 END)::bigint AS payouts
      FROM pay.statement_lines l WHERE l.statement_id = p_statement
     GROUP BY l.currency ORDER BY l.currency
  LOOP
    IF r.fees > 0 THEN
      PERFORM pay._post('statement:' || p_statement || ':fees:' || r.currency, NULL,
        ARRAY[pay._account('fees:' || p_gateway || ':' || r.currency, r.currency),
              pay._account('psp:' || p_gateway || ':' || r.currency, r.currency)],
        ARRAY[-r.fees, r.fees]);
    END IF;
    IF r.payouts > 0 THEN
      PERFORM pay._post('statement:' || p_statement || ':payouts:' || r.currency, NULL,
        ARRAY[pay._account('bank:' || p_gateway || ':' || r.currency, r.currency),
              pay._account('psp:' || p_gateway || ':' || r.currency, r.currency)],
        ARRAY[-r.payouts, r.payouts]);
    END IF;
  END LOOP;
END $$;

CREATE FUNCTION pay.import_statement(gateway text, content bytea, format text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_format text := import_statement.format;
  v_sha bytea;
  v_id bigint;
  v_period record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pay.gateways g WHERE g.name = import_statement.gateway) THEN
    RAISE EXCEPTION 'gateway: unknown gateway "%"', gateway USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF content IS NULL OR length(content) = 0 THEN
    RAISE EXCEPTION 'content: empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_format IS NULL THEN
    v_format := pay._statement_detect(content);
    IF v_format IS NULL THEN
      RAISE EXCEPTION 'format: the content is none of stripe_itemized_csv, alipay_trade_bill, wechatpay_trade_bill, generic_csv'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  ELSIF v_format NOT IN ('stripe_itemized_csv', 'alipay_trade_bill', 'wechatpay_trade_bill', 'generic_csv') THEN
    RAISE EXCEPTION 'format: "%" is none of stripe_itemized_csv, alipay_trade_bill, wechatpay_trade_bill, generic_csv', v_format
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- The same bytes for the same gateway are the same statement.  A
  -- concurrent import of the same file waits here on the unique key and
  -- then finds the first one's row: it books nothing.
  v_sha := sha256(content);
  SELECT s.id INTO v_id FROM pay.statements s WHERE s.gateway = import_statement.gateway AND s.content_sha256 = v_sha;
  IF FOUND THEN
    RETURN v_id;
  END IF;
  INSERT INTO pay.statements (gateway, format, content_sha256, content_bytes, line_count, period_declared)
    VALUES (gateway, v_format, v_sha, length(content), 0, false)
    ON CONFLICT ON CONSTRAINT statements_gateway_content_sha256_key DO NOTHING
    RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT s.id INTO STRICT v_id FROM pay.statements s
     WHERE s.gateway = import_statement.gateway AND s.content_sha256 = v_sha;
    RETURN v_id;
  END IF;

  -- Lines of one gateway are classified one statement at a time (whether a
  -- line is a duplicate depends on the lines imported before it).
  PERFORM pg_advisory_xact_lock(hashtext('pay.import_statement'), hashtext(gateway));

  v_period := pay._statement_stage(v_format, pay._statement_text(content, v_format));
  PERFORM pay._statement_classify(v_id, gateway);
  UPDATE pay.statements s
     SET line_count = x.n,
         period_start = coalesce(v_period.declared_start, x.first_at),
         period_end = coalesce(v_period.declared_end, x.last_at),
         period_declared = v_period.declared_start IS NOT NULL
    FROM (SELECT count(*) AS n, min(occurred_at) AS first_at, max(occurred_at) AS last_at
            FROM pay.statement_lines WHERE statement_id = v_id) x
   WHERE s.id = v_id;
  PERFORM pay._statement_book(v_id, gateway);
  -- every line that is not explained is also an anomaly, for a human to look at
  INSERT INTO pay.anomalies (order_id, gateway, kind, detail)
    SELECT l.order_id, import_statement.gateway, 'statement_' || l.result,
           format('statement %s line %s: %s %s %s %s', v_id, l.line_no, l.kind, l.psp_txn_id,
                  pay._format_amount(l.amount, c.exponent), l.currency)
      FROM pay.statement_lines l JOIN pay.currencies c ON c.code = l.currency
     WHERE l.statement_id = v_id AND l.result NOT IN ('matched', 'duplicate');
  DROP TABLE pg_temp.pay_statement_stage;
  RETURN v_id;
END $$;
COMMENT ON FUNCTION pay.import_statement(text, bytea, text) IS
  'imports a PSP statement (stripe_itemized_csv, alipay_trade_bill, wechatpay_trade_bill, generic_csv; NULL: detected), classifies every line against the books and books the fees and payouts it proves; the same content again returns the same id and changes nothing; a malformed file is refused whole (line and column in the error)';

-- The breaks: every line not matched (nor repaired since), and every
-- payment or refund of ours through the statement's gateway inside its
-- period that no line of that gateway's statements covers (missing_at_psp,
-- evaluated when read: a later statement that has it clears it).
CREATE VIEW pay.reconciliation_breaks AS
  SELECT l.statement_id, l.result, l.order_id, l.psp_txn_id,
         CASE WHEN l.result = 'fee_mismatch' THEN l.expected_fee ELSE l.our_amount END AS our_amount,
         CASE WHEN l.result = 'fee_mismatch' THEN l.fee ELSE l.amount END AS psp_amount,
         CASE l.result
           WHEN 'duplicate' THEN format('line %s: %s %s was on an earlier line', l.line_no, l.kind, l.psp_txn_id)
           WHEN 'missing_in_books' THEN
             CASE WHEN l.order_id IS NULL THEN format('line %s: %s %s matches no order of ours', l.line_no, l.kind, l.psp_txn_id)
                  ELSE format('line %s: %s %s of order %s (%s) is not in our books', l.line_no, l.kind, l.psp_txn_id,
                              l.order_id, o.status) END
           WHEN 'currency_mismatch' THEN format('line %s: PSP says %s, order %s is in %s', l.line_no, l.currency,
                                                l.order_id, o.currency)
           WHEN 'amount_mismatch' THEN format('line %s: %s of %s %s, ours %s', l.line_no, l.kind, l.amount,
                                              l.currency, coalesce(l.our_amount::text, '(none)'))
           WHEN 'status_mismatch' THEN format('line %s: order %s is %s, paid by %s', l.line_no, l.order_id, o.status,
                                              coalesce(o.psp_txn_id, '(nothing)'))
           WHEN 'fee_mismatch' THEN format('line %s: PSP charged %s, expected %s (%s)', l.line_no, l.fee,
                                           l.expected_fee, l.currency)
         END AS detail,
         l.line_no
    FROM pay.statement_lines l
    LEFT JOIN pay.orders o ON o.id = l.order_id
   WHERE l.result <> 'matched' AND l.repaired_at IS NULL
  UNION ALL
  SELECT s.id, 'missing_at_psp', o.id, o.psp_txn_id, coalesce(o.captured_amount, o.amount), NULL,
         format('payment of order %s (%s %s, paid %s) is on no %s statement line', o.id,
                coalesce(o.captured_amount, o.amount), o.currency,
                o.paid_at, s.gateway),
         NULL
    FROM pay.statements s
    JOIN pay.orders o ON o.gateway = s.gateway AND o.paid_at BETWEEN s.period_start AND s.period_end
    JOIN pay.accounts a ON a.id = o.paid_account_id AND a.code = 'psp:' || o.gateway || ':' || o.currency
   WHERE NOT EXISTS (SELECT 1 FROM pay.statement_lines l JOIN pay.statements t ON t.id = l.statement_id
                      WHERE l.order_id = o.id AND l.kind = 'payment' AND t.gateway = s.gateway)
  UNION ALL
  SELECT s.id, 'missing_at_psp', o.id, o.psp_txn_id, r.amount, NULL,
         format('refund %s of order %s (%s %s, %s) is on no %s statement line', r.id, o.id, r.amount, o.currency,
                r.created_at, s.gateway),
         NULL
    FROM pay.statements s
    JOIN pay.orders o ON o.gateway = s.gateway
    JOIN pay.accounts a ON a.id = o.paid_account_id AND a.code = 'psp:' || o.gateway || ':' || o.currency
    JOIN pay.refunds r ON r.order_id = o.id AND r.created_at BETWEEN s.period_start AND s.period_end
   WHERE NOT EXISTS (SELECT 1 FROM pay.statement_lines l WHERE l.refund_id = r.id);
COMMENT ON VIEW pay.reconciliation_breaks IS
  'what the statements do not explain: every statement line not matched (result) and not repaired, and every payment or refund of ours through the gateway inside a statement''s period that no line covers (missing_at_psp, as of now); amounts in minor units (a fee_mismatch compares fees)';

-- Per gateway, currency and day (UTC) what the statements say: payments,
-- refunds, fees, net, paid out, and the money still at the PSP (in transit:
-- net so far minus paid out so far).  Duplicate lines count once.
CREATE VIEW pay.settlement_by_day AS
  SELECT d.gateway, d.currency, d.day, d.gross, d.refunds, d.fees, d.net, d.paid_out,
         (sum(d.net - d.paid_out) OVER (PARTITION BY d.gateway, d.currency ORDER BY d.day))::bigint AS in_transit
    FROM (SELECT s.gateway, l.currency, (l.occurred_at AT TIME ZONE 'UTC')::date AS day,
                 coalesce(sum(l.amount) FILTER (WHERE l.kind = 'payment'), 0)::bigint AS gross,
                 coalesce(sum(l.amount) FILTER (WHERE l.kind = 'refund'), 0)::bigint AS refunds,
                 (coalesce(sum(l.fee) FILTER (WHERE l.kind = 'payment'), 0)
                  + coalesce(sum(l.amount) FILTER (WHERE l.kind = 'fee'), 0))::bigint AS fees,
                 (coalesce(sum(l.amount) FILTER (WHERE l.kind = 'payment'), 0)
                  - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'refund'), 0)
                  - coalesce(sum(l.fee) FILTER (WHERE l.kind = 'payment'), 0)
                  - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'fee'), 0))::bigint AS net,
                 coalesce(sum(l.amount) FILTER (WHERE l.kind = 'payout'), 0)::bigint AS paid_out
            FROM pay.statement_lines l JOIN pay.statements s ON s.id = l.statement_id
           WHERE l.result <> 'duplicate'
           GROUP BY s.gateway, l.currency, 3) d;
COMMENT ON VIEW pay.settlement_by_day IS
  'per gateway, currency and day (UTC) from the PSPs'' statements, minor units: gross payments, refunds, fees, net (gross - refunds - fees), paid out, in transit (net to date - paid out to date: what the PSP still holds)';

-- A payment the PSP proves and our books miss (a missing_in_books payment
-- line for one of our orders), booked through the callbacks' own path
-- (src/callback_apply.c: the order is paid, the ledger books it once, the
-- merchant is notified), with the fee the line shows.
CREATE FUNCTION pay.repair_break(statement_id bigint, line_no integer) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  l pay.statement_lines;
  g pay.gateways;
  v_outcome text;
BEGIN
  SELECT * INTO l FROM pay.statement_lines x
   WHERE x.statement_id = repair_break.statement_id AND x.line_no = repair_break.line_no FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'line_no: statement % has no line %', coalesce(statement_id::text, 'null'), coalesce(line_no::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF l.repaired_at IS NOT NULL THEN
    RETURN 'already repaired';
  END IF;
  IF l.kind <> 'payment' OR l.result <> 'missing_in_books' OR l.order_id IS NULL THEN
    RAISE EXCEPTION 'line_no: line % of statement % is a % line, %, of %; only a missing_in_books payment of one of our orders can be repaired',
      l.line_no, l.statement_id, l.kind, l.result, coalesce('order ' || l.order_id, 'no order')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT gw.* INTO STRICT g FROM pay.gateways gw JOIN pay.statements s ON s.gateway = gw.name WHERE s.id = l.statement_id;
  v_outcome := pay._apply_answer_event(g.name, jsonb_build_object(
      'kind', 'payment_succeeded', 'order_ref', l.order_id::text, 'psp_txn_id', l.psp_txn_id,
      'amount', l.amount::text, 'currency', l.currency::text,
      'event_id', 'statement:' || l.statement_id || ':' || l.line_no,
      'cause', 'statement ' || l.statement_id || ' line ' || l.line_no),
    'statement ' || l.statement_id || ' line ' || l.line_no);
  IF v_outcome LIKE 'paid%' OR v_outcome = 'already paid by this transaction' THEN
    UPDATE pay.statement_lines x SET repaired_at = now()
     WHERE x.statement_id = l.statement_id AND x.line_no = l.line_no;
    IF l.fee > 0 THEN
      PERFORM pay._post('statement:' || l.statement_id || ':line:' || l.line_no || ':fee', l.order_id,
        ARRAY[pay._account('fees:' || g.name || ':' || l.currency, l.currency),
              pay._account('psp:' || g.name || ':' || l.currency, l.currency)],
        ARRAY[-l.fee, l.fee]);
    END IF;
  END IF;
  RETURN v_outcome;
END $$;
COMMENT ON FUNCTION pay.repair_break(bigint, integer) IS
  'books the payment a missing_in_books statement line proves for one of our orders, through the callbacks'' path (order paid, ledger booked once, merchant notified) and its PSP fee; returns the outcome';

GRANT EXECUTE ON FUNCTION pay.import_statement(text, bytea, text), pay.repair_break(bigint, integer) TO pay_admin;
GRANT SELECT ON pay.fee_rules, pay.statements, pay.statement_lines, pay.reconciliation_breaks,
    pay.settlement_by_day TO pay_admin;
