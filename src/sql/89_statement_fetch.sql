-- Statements fetched from the PSP through the dispatcher (the outbox), then
-- imported like a downloaded file (pay.import_statement).  Each step is
-- an operation of the gateway's provider, in C (src/provider_stripe_statement.c,
-- src/provider_wechatpay.c, src/provider_alipay.c): its request built and
-- its answer read there, the provider's own checks and file hosts
-- included.  Here, the same for every provider: the next step the answer
-- names is queued, or the file imported.  The day is a UTC day for Stripe,
-- the bill date (China time) for WeChat Pay and Alipay.
--
-- Stripe: a report run of balance_change_from_activity.itemized.3 for one
-- UTC day (POST /v1/reporting/report_runs), polled while Stripe prepares
-- it (GET /v1/reporting/report_runs/{id}, a minute apart), then its file
-- downloaded with the API key (GET result.url).  The file's URL is used
-- only when it is under the gateway's base_url or on files.stripe.com, so
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
-- from under the gateway's base_url or api.mch.weixin.qq.com only) and imported only
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

-- What a provider makes of a step's answer (src/provider_dispatch.c; each
-- provider's reader in its src/provider_<kind>.c, provider.h "Statement
-- fetches"): the 2xx answer to fetch_statement or fetch_statement_poll as
-- a step summary, {"verdict": "refused", "reason"} or {"verdict":
-- "applied", "next": {operation, params, key, delay_s}}; the file of
-- fetch_statement_file checked (WeChat Pay's SHA-1) and opened (Alipay's
-- zip) into the content pay.import_statement takes and its format, or the
-- reason it must not be imported.
CREATE FUNCTION pay._provider_statement_answer(r pay.outbox, g pay.gateways, p_body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_provider_statement_answer' LANGUAGE C VOLATILE;
CREATE FUNCTION pay._provider_statement_file(r pay.outbox, g pay.gateways, p_file bytea,
                                             OUT content bytea, OUT format text, OUT reason text)
    AS 'MODULE_PATHNAME', 'pay_provider_statement_file' LANGUAGE C VOLATILE;

-- A statement file as downloaded, imported once its provider has checked
-- and opened it.  Returns NULL, or why it cannot be used.
CREATE FUNCTION pay._apply_statement_file(r pay.outbox, g pay.gateways, p_file bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  f record;
BEGIN
  f := pay._provider_statement_file(r, g, p_file);
  IF f.reason IS NOT NULL THEN
    RETURN f.reason;
  END IF;
  PERFORM pay.import_statement(g.name, f.content, f.format);
  RETURN NULL;
END $$;

-- A 2xx answer to a fetch step: the next step the provider names queued
-- under <operation>:<gateway>:<key> (and not sent before its delay), or
-- the file imported.  Returns NULL, or why the answer cannot be used (the
-- row goes dead).
CREATE FUNCTION pay._apply_statement_answer(r pay.outbox, g pay.gateways, p_body text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  a jsonb;
  v_id bigint;
BEGIN
  IF r.operation = 'fetch_statement_file' THEN
    RETURN pay._apply_statement_file(r, g, convert_to(coalesce(p_body, ''), 'UTF8'));
  END IF;
  BEGIN
    PERFORM p_body::jsonb;
  EXCEPTION WHEN OTHERS THEN
    RETURN 'the answer is not JSON';
  END;
  a := pay._provider_statement_answer(r, g, p_body);
  IF a->>'verdict' = 'refused' THEN
    RETURN a->>'reason';
  END IF;
  v_id := pay._enqueue('psp_request', r.destination, a->'next'->>'operation', NULL, a->'next'->'params',
                       (a->'next'->>'operation') || ':' || g.name || ':' || (a->'next'->>'key'), false);
  IF (a->'next'->>'delay_s')::integer > 0 THEN
    UPDATE pay.outbox SET next_attempt_at = now() + make_interval(secs => (a->'next'->>'delay_s')::integer)
     WHERE id = v_id AND state = 'pending';
  END IF;
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
