-- Statements fetched from the PSP through the dispatcher (the outbox), then
-- imported like a downloaded file (pay.import_statement).  Each step's
-- request is an operation of the gateway's provider, built in C
-- (src/provider_stripe_statement.c, src/provider_wechatpay.c,
-- src/provider_alipay.c); its answer is applied here.  The day is a UTC
-- day for Stripe, the bill date (China time) for WeChat Pay and Alipay.
--
-- Stripe: a report run of balance_change_from_activity.itemized.3 for one
-- UTC day (POST /v1/reporting/report_runs), polled while Stripe prepares
-- it (GET /v1/reporting/report_runs/{id}, a minute apart), then its file
-- downloaded with the API key (GET result.url).  The file's URL is used
-- only when it is on the gateway's own origin or on files.stripe.com, so
-- the API key is never sent anywhere else; the file arrives over the
-- dispatcher's verified TLS and is refused whole if it is not a well-formed
-- report.  Each step is its own outbox row with its own idempotency key
-- (fetch_statement:<gateway>:<day>, then the report run's id), so a retried
-- step neither asks for a second report nor imports twice (and a file
-- imported again is the same statement anyway).  A file larger than
-- pay.http_response_max (default 1 MB) fails its attempts: raise that
-- setting for large statements.
--
-- WeChat Pay: the trade bill of one day (GET /v3/bill/tradebill?bill_date=
-- &bill_type=ALL, signed like every API call), whose answer names the
-- download URL and the file's SHA-1; the file is downloaded (signed again,
-- from the gateway's origin or api.mch.weixin.qq.com only) and imported only
-- if its SHA-1 is the one the answer named.  (The dispatcher does not pass
-- WeChat Pay's response signature headers to SQL: the digest ties the file
-- to the API answer, TLS to WeChat Pay.)
--
-- Alipay: alipay.data.dataservice.bill.downloadurl.query (bill_type trade,
-- bill_date), signed RSA2 like every Alipay call; its answer must carry
-- code 10000 and verify against the gateway's Alipay public key, and names
-- bill_download_url, which is fetched only from the gateway's origin or
-- dwbillcenter.alipay.com (Alipay's bill host; the URL carries its own
-- short-lived token, no credential of ours).  The file is a zip archive:
-- the 业务明细 CSV (the one imported, alipay_trade_bill) and its 汇总
-- summary; pay._zip_member (src/statement_zip.c, src/proto/zip_read.c)
-- takes the detail out, with the archive's sizes, ratio, member count and
-- CRC-32 checked.  The dispatcher hands an answer that is not text (the
-- zip) to pay._outbox_apply_bytes.

CREATE FUNCTION pay._sha1_hex(p_data bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_sha1_hex' LANGUAGE C IMMUTABLE STRICT;

CREATE FUNCTION pay.fetch_statement(gateway text, day date DEFAULT (now() AT TIME ZONE 'UTC')::date - 1)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g pay.gateways;
  v_start bigint;
BEGIN
  SELECT * INTO g FROM pay.gateways x WHERE x.name = fetch_statement.gateway;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'gateway: unknown gateway "%"', gateway USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF g.kind <> ALL (pay._provider_kinds('statements')) THEN
    RAISE EXCEPTION 'gateway: fetching statements from % gateways is not supported; import their bills with pay.import_statement', g.kind
      USING ERRCODE = 'feature_not_supported';
  END IF;
  IF day IS NULL THEN
    RAISE EXCEPTION 'day must not be null' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_start := extract(epoch FROM day::timestamp AT TIME ZONE 'UTC')::bigint;
  RETURN pay._enqueue('psp_request', 'gateway:' || g.name, 'fetch_statement', NULL,
    jsonb_build_object('day', to_char(day, 'YYYY-MM-DD'), 'interval_start', v_start, 'interval_end', v_start + 86400),
    'fetch_statement:' || g.name || ':' || to_char(day, 'YYYY-MM-DD'), false);
END $$;
COMMENT ON FUNCTION pay.fetch_statement(text, date) IS
  'queues the fetch of a gateway''s statement of one day (default yesterday, UTC) through the dispatcher; it is imported (pay.import_statement) when it arrives; Stripe (report run), WeChat Pay (trade bill, SHA-1 checked) and Alipay (trade bill, signed answer, zip) gateways; returns the outbox id';

-- Is this URL one the gateway's credentials may be used for: its own
-- origin, or the provider's file host?  (An Alipay gateway's base_url may
-- name its gateway.do: its origin is scheme, host and port.)
CREATE FUNCTION pay._statement_url_trusted(p_url text, g pay.gateways) RETURNS boolean
LANGUAGE sql STABLE
RETURN coalesce(p_url !~ '[\s\\@]'
   AND (coalesce(left(p_url, length(rtrim(g.base_url, '/')) + 1) = rtrim(g.base_url, '/') || '/', false)
        OR (g.kind = 'alipay'
            AND left(p_url, length(substring(g.base_url FROM '^https?://[^/]+')) + 1)
                = substring(g.base_url FROM '^https?://[^/]+') || '/')
        OR (g.kind = 'stripe' AND p_url LIKE 'https://files.stripe.com/%')
        OR (g.kind = 'wechatpay' AND p_url LIKE 'https://api.mch.weixin.qq.com/%')
        OR (g.kind = 'alipay' AND p_url LIKE 'https://dwbillcenter.alipay.com/%')), false);

-- A statement file as downloaded, imported (the SHA-1 checked, the zip
-- opened, as the provider needs).  Returns NULL, or why it cannot be used.
CREATE FUNCTION pay._apply_statement_file(r pay.outbox, g pay.gateways, p_file bytea) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  IF g.kind = 'wechatpay' AND pay._sha1_hex(p_file) IS DISTINCT FROM lower(r.params->>'hash_value') THEN
    RETURN format('the bill''s SHA-1 %s is not the %s WeChat Pay named', pay._sha1_hex(p_file), r.params->>'hash_value');
  END IF;
  IF g.kind = 'alipay' THEN
    -- the detail, not its 汇总 summary (whose name also says 业务明细)
    p_file := pay._zip_member(p_file, '业务明细', '汇总');
  END IF;
  PERFORM pay.import_statement(g.name, p_file,
                               CASE g.kind WHEN 'wechatpay' THEN 'wechatpay_trade_bill'
                                           WHEN 'alipay' THEN 'alipay_trade_bill'
                                           ELSE 'stripe_itemized_csv' END);
  RETURN NULL;
END $$;

-- Alipay's answer naming the bill's URL: a success, signed by Alipay.
CREATE FUNCTION pay._apply_alipay_bill_answer(r pay.outbox, g pay.gateways, p_body text, v jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_resp jsonb := v->'alipay_data_dataservice_bill_downloadurl_query_response';
BEGIN
  IF v_resp IS NULL OR v_resp->>'code' IS DISTINCT FROM '10000' THEN
    RETURN format('alipay answered %s %s', coalesce(v_resp->>'code', '(no code)'),
                  coalesce(v_resp->>'sub_code', v_resp->>'msg', ''));
  END IF;
  IF NOT pay.alipay_response_valid(p_body, pay._credential(r.destination, 'public_key')) THEN
    RETURN 'the signature of alipay''s answer does not verify';
  END IF;
  IF NOT pay._statement_url_trusted(v_resp->>'bill_download_url', g) THEN
    RETURN format('the bill''s URL %s is not on %s nor dwbillcenter.alipay.com', v_resp->>'bill_download_url',
                  coalesce(g.base_url, 'https://openapi.alipay.com'));
  END IF;
  PERFORM pay._enqueue('psp_request', r.destination, 'fetch_statement_file', NULL,
    jsonb_build_object('day', r.params->>'day', 'url', v_resp->>'bill_download_url'),
    'fetch_statement_file:' || g.name || ':' || (r.params->>'day'), false);
  RETURN NULL;
END $$;

-- A 2xx answer to a fetch step: the next step queued, or the file imported.
-- Returns NULL, or why the answer cannot be used (the row goes dead).
CREATE FUNCTION pay._apply_statement_answer(r pay.outbox, g pay.gateways, p_body text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v jsonb;
  v_id bigint;
BEGIN
  IF r.operation = 'fetch_statement_file' THEN
    RETURN pay._apply_statement_file(r, g, convert_to(coalesce(p_body, ''), 'UTF8'));
  END IF;
  BEGIN
    v := p_body::jsonb;
  EXCEPTION WHEN OTHERS THEN
    RETURN 'the answer is not JSON';
  END;
  IF g.kind = 'alipay' THEN
    RETURN pay._apply_alipay_bill_answer(r, g, p_body, v);
  END IF;
  IF g.kind = 'wechatpay' THEN
    IF v->>'hash_type' IS DISTINCT FROM 'SHA1' OR coalesce(v->>'hash_value', '') !~ '^[0-9A-Fa-f]{40}$' THEN
      RETURN format('the bill''s digest is %s %s, not a SHA1', v->>'hash_type', v->>'hash_value');
    END IF;
    IF NOT pay._statement_url_trusted(v->>'download_url', g) THEN
      RETURN format('the bill''s URL %s is not on %s nor api.mch.weixin.qq.com', v->>'download_url', g.base_url);
    END IF;
    PERFORM pay._enqueue('psp_request', r.destination, 'fetch_statement_file', NULL,
      jsonb_build_object('day', r.params->>'day', 'url', v->>'download_url',
                         'hash_type', v->>'hash_type', 'hash_value', v->>'hash_value'),
      'fetch_statement_file:' || g.name || ':' || (r.params->>'day'), false);
    RETURN NULL;
  END IF;
  CASE v->>'status'
    WHEN 'succeeded' THEN
      IF NOT pay._statement_url_trusted(v->'result'->>'url', g) THEN
        RETURN format('the report''s file URL %s is not on %s nor files.stripe.com', v->'result'->>'url',
                      coalesce(g.base_url, 'https://api.stripe.com'));
      END IF;
      PERFORM pay._enqueue('psp_request', r.destination, 'fetch_statement_file', NULL,
        jsonb_build_object('day', r.params->>'day', 'report_run', v->>'id', 'url', v->'result'->>'url'),
        'fetch_statement_file:' || g.name || ':' || (v->>'id'), false);
    WHEN 'pending' THEN
      -- Stripe is still preparing it: ask again in a minute
      v_id := pay._enqueue('psp_request', r.destination, 'fetch_statement_poll', NULL,
        jsonb_build_object('day', r.params->>'day', 'report_run', v->>'id'),
        'fetch_statement_poll:' || g.name || ':' || (v->>'id') || ':' || r.id, false);
      UPDATE pay.outbox SET next_attempt_at = now() + interval '1 minute' WHERE id = v_id AND state = 'pending';
    ELSE
      RETURN format('the report run %s is %s', v->>'id', coalesce(v->>'status', '(no status)'));
  END CASE;
  RETURN NULL;
END $$;

-- For the dispatcher: a 2xx answer that is not text (Alipay's zipped bill).
-- Only a statement file step takes bytes; anything else is refused as the
-- text path refuses it.  Returns NULL, or why (the row goes dead).
CREATE FUNCTION pay._outbox_apply_bytes(p_id bigint, p_status integer, p_body bytea) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
  g pay.gateways;
BEGIN
  SELECT * INTO r FROM pay.outbox WHERE id = p_id;
  IF NOT FOUND OR r.kind <> 'psp_request' THEN
    RETURN NULL;
  END IF;
  IF r.operation <> 'fetch_statement_file' THEN
    RETURN 'the answer is not valid text in the database encoding';
  END IF;
  SELECT * INTO g FROM pay.gateways WHERE name = substr(r.destination, length('gateway:') + 1);
  RETURN pay._apply_statement_file(r, g, coalesce(p_body, ''));
EXCEPTION WHEN OTHERS THEN
  RETURN 'applying the answer failed: ' || SQLSTATE || ': ' || SQLERRM;
END $$;

-- The one member of a zip archive whose name contains name_part and not
-- name_not (either in GBK or UTF-8): Alipay's bill.  22P02 corrupt or
-- truncated, CRC-32 wrong, no or several such members; 54000 above the
-- limits (256 MB, a ratio of 200, 16 members); 0A000 encrypted or neither
-- stored nor deflated.
CREATE FUNCTION pay._zip_member(content bytea, name_part text, name_not text DEFAULT NULL) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pay_zip_member' LANGUAGE C IMMUTABLE;

GRANT EXECUTE ON FUNCTION pay.fetch_statement(text, date) TO pay_admin;
