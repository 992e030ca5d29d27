-- A WeChat Pay callback without a body is verified like any other: the
-- signature must cover the (empty) body, so a body-less callback with a
-- made-up signature is refused as unsigned (PY010), not read on.

\getenv abs_srcdir PG_ABS_SRCDIR
\set keys :abs_srcdir '/test/vectors/callback_keys/'
\set master_key :abs_srcdir '/test/keys/master-a.hex'
SET pay.master_key_file = :'master_key';

SELECT pay.create_gateway('wu_wechat', 'wechatpay') > 0 AS gateway;
SELECT pay.set_secret('gateway:wu_wechat', 'platform_cert:5157F09EFDC096DE15EBE81A47057A72',
                      pg_read_file(:'keys' || 'wechat_platform_cert.pem')) IS NOT NULL AS platform_cert;
SELECT pay.set_secret('gateway:wu_wechat', 'apiv3_key', '0123456789abcdef0123456789ABCDEF') IS NOT NULL AS apiv3_key;

SELECT http_status, content_type, body
  FROM pay.handle_callback('wu_wechat',
         jsonb_build_object('Content-Type', 'application/json',
                            'Wechatpay-Timestamp', floor(extract(epoch FROM now()))::bigint::text,
                            'Wechatpay-Nonce', 'nonce-wu-0001', 'Wechatpay-Serial', '5157F09EFDC096DE15EBE81A47057A72',
                            'Wechatpay-Signature', encode('made up', 'base64')),
         NULL);
SELECT verdict, reason_code, reason, http_status FROM pay.callbacks WHERE gateway = 'wu_wechat' ORDER BY id;
