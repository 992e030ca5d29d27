-- pay install script, assembled by the Makefile from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION pay" to load this file. \quit

-- Roles are cluster-wide, so they may already exist (a second database, a
-- reinstall); create only what is missing.  They cannot log in: grant them to
-- the login roles of the application, the proxy and the DBAs.  What each
-- may do: 90_privileges.sql and README.md, "Roles".
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['pay_app', 'pay_callback', 'pay_admin', 'pay_readonly'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;

REVOKE ALL ON SCHEMA pay FROM PUBLIC;
GRANT USAGE ON SCHEMA pay TO pay_app, pay_callback, pay_admin, pay_readonly;
COMMENT ON SCHEMA pay IS 'payment ledger: orders, state machine, idempotency keys, double-entry ledger';
-- ISO 4217 currencies with a defined minor unit (funds and metals without one,
-- such as XAU or XDR, cannot be expressed in integer minor units and are absent).
CREATE TABLE pay.currencies (
    code        char(3)  PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    numeric_code smallint NOT NULL CHECK (numeric_code BETWEEN 1 AND 999),
    exponent    smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
    name        text     NOT NULL
);
COMMENT ON TABLE pay.currencies IS 'ISO 4217 currencies and their minor-unit exponents (JPY 0, USD 2, KWD 3, CLF 4)';

INSERT INTO pay.currencies (code, numeric_code, exponent, name) VALUES
  ('AED', 784, 2, 'UAE Dirham'),
  ('AFN', 971, 2, 'Afghani'),
  ('ALL', 8, 2, 'Lek'),
  ('AMD', 51, 2, 'Armenian Dram'),
  ('ANG', 532, 2, 'Netherlands Antillean Guilder'),
  ('AOA', 973, 2, 'Kwanza'),
  ('ARS', 32, 2, 'Argentine Peso'),
  ('AUD', 36, 2, 'Australian Dollar'),
  ('AWG', 533, 2, 'Aruban Florin'),
  ('AZN', 944, 2, 'Azerbaijan Manat'),
  ('BAM', 977, 2, 'Convertible Mark'),
  ('BBD', 52, 2, 'Barbados Dollar'),
  ('BDT', 50, 2, 'Taka'),
  ('BGN', 975, 2, 'Bulgarian Lev'),
  ('BHD', 48, 3, 'Bahraini Dinar'),
  ('BIF', 108, 0, 'Burundi Franc'),
  ('BMD', 60, 2, 'Bermudian Dollar'),
  ('BND', 96, 2, 'Brunei Dollar'),
  ('BOB', 68, 2, 'Boliviano'),
  ('BOV', 984, 2, 'Mvdol'),
  ('BRL', 986, 2, 'Brazilian Real'),
  ('BSD', 44, 2, 'Bahamian Dollar'),
  ('BTN', 64, 2, 'Ngultrum'),
  ('BWP', 72, 2, 'Pula'),
  ('BYN', 933, 2, 'Belarusian Ruble'),
  ('BZD', 84, 2, 'Belize Dollar'),
  ('CAD', 124, 2, 'Canadian Dollar'),
  ('CDF', 976, 2, 'Congolese Franc'),
  ('CHE', 947, 2, 'WIR Euro'),
  ('CHF', 756, 2, 'Swiss Franc'),
  ('CHW', 948, 2, 'WIR Franc'),
  ('CLF', 990, 4, 'Unidad de Fomento'),
  ('CLP', 152, 0, 'Chilean Peso'),
  ('CNY', 156, 2, 'Yuan Renminbi'),
  ('COP', 170, 2, 'Colombian Peso'),
  ('COU', 970, 2, 'Unidad de Valor Real'),
  ('CRC', 188, 2, 'Costa Rican Colon'),
  ('CUC', 931, 2, 'Peso Convertible'),
  ('CUP', 192, 2, 'Cuban Peso'),
  ('CVE', 132, 2, 'Cabo Verde Escudo'),
  ('CZK', 203, 2, 'Czech Koruna'),
  ('DJF', 262, 0, 'Djibouti Franc'),
  ('DKK', 208, 2, 'Danish Krone'),
  ('DOP', 214, 2, 'Dominican Peso'),
  ('DZD', 12, 2, 'Algerian Dinar'),
  ('EGP', 818, 2, 'Egyptian Pound'),
  ('ERN', 232, 2, 'Nakfa'),
  ('ETB', 230, 2, 'Ethiopian Birr'),
  ('EUR', 978, 2, 'Euro'),
  ('FJD', 242, 2, 'Fiji Dollar'),
  ('FKP', 238, 2, 'Falkland Islands Pound'),
  ('GBP', 826, 2, 'Pound Sterling'),
  ('GEL', 981, 2, 'Lari'),
  ('GHS', 936, 2, 'Ghana Cedi'),
  ('GIP', 292, 2, 'Gibraltar Pound'),
  ('GMD', 270, 2, 'Dalasi'),
  ('GNF', 324, 0, 'Guinean Franc'),
  ('GTQ', 320, 2, 'Quetzal'),
  ('GYD', 328, 2, 'Guyana Dollar'),
  ('HKD', 344, 2, 'Hong Kong Dollar'),
  ('HNL', 340, 2, 'Lempira'),
  ('HTG', 332, 2, 'Gourde'),
  ('HUF', 348, 2, 'Forint'),
  ('IDR', 360, 2, 'Rupiah'),
  ('ILS', 376, 2, 'New Israeli Sheqel'),
  ('INR', 356, 2, 'Indian Rupee'),
  ('IQD', 368, 3, 'Iraqi Dinar'),
  ('IRR', 364, 2, 'Iranian Rial'),
  ('ISK', 352, 0, 'Iceland Krona'),
  ('JMD', 388, 2, 'Jamaican Dollar'),
  ('JOD', 400, 3, 'Jordanian Dinar'),
  ('JPY', 392, 0, 'Yen'),
  ('KES', 404, 2, 'Kenyan Shilling'),
  ('KGS', 417, 2, 'Som'),
  ('KHR', 116, 2, 'Riel'),
  ('KMF', 174, 0, 'Comorian Franc'),
  ('KPW', 408, 2, 'North Korean Won'),
  ('KRW', 410, 0, 'Won'),
  ('KWD', 414, 3, 'Kuwaiti Dinar'),
  ('KYD', 136, 2, 'Cayman Islands Dollar'),
  ('KZT', 398, 2, 'Tenge'),
  ('LAK', 418, 2, 'Lao Kip'),
  ('LBP', 422, 2, 'Lebanese Pound'),
  ('LKR', 144, 2, 'Sri Lanka Rupee'),
  ('LRD', 430, 2, 'Liberian Dollar'),
  ('LSL', 426, 2, 'Loti'),
  ('LYD', 434, 3, 'Libyan Dinar'),
  ('MAD', 504, 2, 'Moroccan Dirham'),
  ('MDL', 498, 2, 'Moldovan Leu'),
  ('MGA', 969, 2, 'Malagasy Ariary'),
  ('MKD', 807, 2, 'Denar'),
  ('MMK', 104, 2, 'Kyat'),
  ('MNT', 496, 2, 'Tugrik'),
  ('MOP', 446, 2, 'Pataca'),
  ('MRU', 929, 2, 'Ouguiya'),
  ('MUR', 480, 2, 'Mauritius Rupee'),
  ('MVR', 462, 2, 'Rufiyaa'),
  ('MWK', 454, 2, 'Malawi Kwacha'),
  ('MXN', 484, 2, 'Mexican Peso'),
  ('MXV', 979, 2, 'Mexican Unidad de Inversion (UDI)'),
  ('MYR', 458, 2, 'Malaysian Ringgit'),
  ('MZN', 943, 2, 'Mozambique Metical'),
  ('NAD', 516, 2, 'Namibia Dollar'),
  ('NGN', 566, 2, 'Naira'),
  ('NIO', 558, 2, 'Cordoba Oro'),
  ('NOK', 578, 2, 'Norwegian Krone'),
  ('NPR', 524, 2, 'Nepalese Rupee'),
  ('NZD', 554, 2, 'New Zealand Dollar'),
  ('OMR', 512, 3, 'Rial Omani'),
  ('PAB', 590, 2, 'Balboa'),
  ('PEN', 604, 2, 'Sol'),
  ('PGK', 598, 2, 'Kina'),
  ('PHP', 608, 2, 'Philippine Peso'),
  ('PKR', 586, 2, 'Pakistan Rupee'),
  ('PLN', 985, 2, 'Zloty'),
  ('PYG', 600, 0, 'Guarani'),
  ('QAR', 634, 2, 'Qatari Rial'),
  ('RON', 946, 2, 'Romanian Leu'),
  ('RSD', 941, 2, 'Serbian Dinar'),
  ('RUB', 643, 2, 'Russian Ruble'),
  ('RWF', 646, 0, 'Rwanda Franc'),
  ('SAR', 682, 2, 'Saudi Riyal'),
  ('SBD', 90, 2, 'Solomon Islands Dollar'),
  ('SCR', 690, 2, 'Seychelles Rupee'),
  ('SDG', 938, 2, 'Sudanese Pound'),
  ('SEK', 752, 2, 'Swedish Krona'),
  ('SGD', 702, 2, 'Singapore Dollar'),
  ('SHP', 654, 2, 'Saint Helena Pound'),
  ('SLE', 925, 2, 'Leone'),
  ('SLL', 694, 2, 'Leone (old)'),
  ('SOS', 706, 2, 'Somali Shilling'),
  ('SRD', 968, 2, 'Surinam Dollar'),
  ('SSP', 728, 2, 'South Sudanese Pound'),
  ('STN', 930, 2, 'Dobra'),
  ('SVC', 222, 2, 'El Salvador Colon'),
  ('SYP', 760, 2, 'Syrian Pound'),
  ('SZL', 748, 2, 'Lilangeni'),
  ('THB', 764, 2, 'Baht'),
  ('TJS', 972, 2, 'Somoni'),
  ('TMT', 934, 2, 'Turkmenistan New Manat'),
  ('TND', 788, 3, 'Tunisian Dinar'),
  ('TOP', 776, 2, 'Pa''anga'),
  ('TRY', 949, 2, 'Turkish Lira'),
  ('TTD', 780, 2, 'Trinidad and Tobago Dollar'),
  ('TWD', 901, 2, 'New Taiwan Dollar'),
  ('TZS', 834, 2, 'Tanzanian Shilling'),
  ('UAH', 980, 2, 'Hryvnia'),
  ('UGX', 800, 0, 'Uganda Shilling'),
  ('USD', 840, 2, 'US Dollar'),
  ('USN', 997, 2, 'US Dollar (Next day)'),
  ('UYI', 940, 0, 'Uruguay Peso en Unidades Indexadas (UI)'),
  ('UYU', 858, 2, 'Peso Uruguayo'),
  ('UYW', 927, 4, 'Unidad Previsional'),
  ('UZS', 860, 2, 'Uzbekistan Sum'),
  ('VED', 926, 2, 'Bolivar Soberano (digital)'),
  ('VES', 928, 2, 'Bolivar Soberano'),
  ('VND', 704, 0, 'Dong'),
  ('VUV', 548, 0, 'Vatu'),
  ('WST', 882, 2, 'Tala'),
  ('XAF', 950, 0, 'CFA Franc BEAC'),
  ('XCD', 951, 2, 'East Caribbean Dollar'),
  ('XCG', 532, 2, 'Caribbean Guilder'),
  ('XOF', 952, 0, 'CFA Franc BCEAO'),
  ('XPF', 953, 0, 'CFP Franc'),
  ('YER', 886, 2, 'Yemeni Rial'),
  ('ZAR', 710, 2, 'Rand'),
  ('ZMW', 967, 2, 'Zambian Kwacha'),
  ('ZWG', 924, 2, 'Zimbabwe Gold'),
  ('ZWL', 932, 2, 'Zimbabwe Dollar');
-- Merchants, payment gateways and routing.

CREATE TABLE pay.merchants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    notify_url  text CHECK (notify_url ~ '^https?://'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.merchants IS 'merchants that own orders; code is the public identifier';

CREATE TABLE pay.gateways (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    kind        text NOT NULL CHECK (kind IN ('stripe', 'alipay', 'wechatpay', 'adyen', 'paypal', 'generic')),
    base_url    text CHECK (base_url ~ '^https?://'),
    options     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.gateways IS 'payment service providers we route orders to; credentials live in the secret store';

-- Routing: among the rules of the lowest priority whose merchant, currency
-- and amount match (NULL matches any) and whose gateway is available, one
-- chosen in proportion to weight (src/order_route.c).
CREATE TABLE pay.routing_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id bigint,                 -- references: routing_rules_merchant and the two below
    currency    char(3),
    gateway_id  bigint NOT NULL,
    priority    integer NOT NULL DEFAULT 100,
    min_amount  bigint CHECK (min_amount >= 0),
    max_amount  bigint CHECK (max_amount >= 0),
    weight      integer NOT NULL DEFAULT 1 CHECK (weight >= 1),
    reroute     boolean NOT NULL DEFAULT false,
    CHECK (min_amount <= max_amount)
);
COMMENT ON TABLE pay.routing_rules IS
  'which gateway serves an order created without one: lowest priority first, NULL matches any, split by weight';
COMMENT ON COLUMN pay.routing_rules.min_amount IS 'inclusive lower bound of the order amount, minor units of its currency; NULL: none';
COMMENT ON COLUMN pay.routing_rules.max_amount IS 'inclusive upper bound of the order amount, minor units of its currency; NULL: none';
COMMENT ON COLUMN pay.routing_rules.reroute IS
  'an order this rule routed moves, once, to the next available gateway when its create_payment request fails for good (pay.set_routing_rule_reroute)';
COMMENT ON COLUMN pay.routing_rules.weight IS 'share of the orders of its priority tier, in proportion to the weights of the available rules';

-- Rate limits: a token bucket per merchant, kept in shared memory
-- (src/rate_limit.c); this table is its configuration.
CREATE TABLE pay.rate_limits (
    merchant_id bigint PRIMARY KEY,     -- references: rate_limits_merchant
    per_second  numeric NOT NULL CHECK (per_second > 0),
    burst       integer NOT NULL CHECK (burst >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.rate_limits IS
  'create_order rate limit per merchant: per_second tokens added to a bucket of burst tokens; merchants without a row get pay.default_rate_limit';

-- References between pay's tables are row triggers, not foreign keys:
-- pg_restore -j loads tables in parallel and does not wait for a parent's
-- rows, and the triggers step aside while a restore COPYs rows back
-- (src/references.c).  _reference_exists(column, parent, parent_column) on
-- the referencing table; _reference_unused(column, child, child_column) on
-- a referenced table whose rows may otherwise be deleted.
CREATE FUNCTION pay._reference_exists() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_reference_exists' LANGUAGE C;
CREATE FUNCTION pay._reference_unused() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_reference_unused' LANGUAGE C;

CREATE TRIGGER routing_rules_merchant BEFORE INSERT OR UPDATE OF merchant_id ON pay.routing_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('merchant_id', 'pay.merchants', 'id');
CREATE TRIGGER routing_rules_currency BEFORE INSERT OR UPDATE OF currency ON pay.routing_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('currency', 'pay.currencies', 'code');
CREATE TRIGGER routing_rules_gateway BEFORE INSERT OR UPDATE OF gateway_id ON pay.routing_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('gateway_id', 'pay.gateways', 'id');
ALTER TABLE pay.routing_rules ENABLE ALWAYS TRIGGER routing_rules_merchant;
ALTER TABLE pay.routing_rules ENABLE ALWAYS TRIGGER routing_rules_currency;
ALTER TABLE pay.routing_rules ENABLE ALWAYS TRIGGER routing_rules_gateway;
CREATE TRIGGER rate_limits_merchant BEFORE INSERT OR UPDATE OF merchant_id ON pay.rate_limits
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('merchant_id', 'pay.merchants', 'id');
ALTER TABLE pay.rate_limits ENABLE ALWAYS TRIGGER rate_limits_merchant;

-- Orders refer to merchants, currencies and gateways without foreign keys: a
-- foreign-key check takes a KEY SHARE lock on the parent row, so every order
-- of a merchant would lock (and WAL-log a lock on) the same merchant and
-- currency rows.  Instead these parents can never be deleted or re-keyed.
CREATE FUNCTION pay._forbid_parent_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    RAISE EXCEPTION '% rows cannot change their %', TG_TABLE_NAME, TG_ARGV[0]
      USING ERRCODE = 'restrict_violation', HINT = 'Orders and ledger entries refer to it.';
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION '% cannot be truncated', TG_TABLE_NAME
      USING ERRCODE = 'restrict_violation', HINT = 'Orders and ledger entries refer to its rows.';
  END IF;
  RAISE EXCEPTION '% rows cannot be deleted', TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation', HINT = 'Orders and ledger entries refer to it.';
END $$;

CREATE TRIGGER merchants_keep BEFORE DELETE OR UPDATE OF id, code ON pay.merchants
    FOR EACH ROW EXECUTE FUNCTION pay._forbid_parent_change('id or code');
CREATE TRIGGER gateways_keep BEFORE DELETE OR UPDATE OF id, name ON pay.gateways
    FOR EACH ROW EXECUTE FUNCTION pay._forbid_parent_change('id or name');
CREATE TRIGGER currencies_keep BEFORE DELETE OR UPDATE OF code, exponent ON pay.currencies
    FOR EACH ROW EXECUTE FUNCTION pay._forbid_parent_change('code or exponent');
CREATE TRIGGER merchants_keep_all BEFORE TRUNCATE ON pay.merchants
    FOR EACH STATEMENT EXECUTE FUNCTION pay._forbid_parent_change();
CREATE TRIGGER gateways_keep_all BEFORE TRUNCATE ON pay.gateways
    FOR EACH STATEMENT EXECUTE FUNCTION pay._forbid_parent_change();
CREATE TRIGGER currencies_keep_all BEFORE TRUNCATE ON pay.currencies
    FOR EACH STATEMENT EXECUTE FUNCTION pay._forbid_parent_change();
ALTER TABLE pay.merchants ENABLE ALWAYS TRIGGER merchants_keep;
ALTER TABLE pay.gateways ENABLE ALWAYS TRIGGER gateways_keep;
ALTER TABLE pay.currencies ENABLE ALWAYS TRIGGER currencies_keep;
ALTER TABLE pay.merchants ENABLE ALWAYS TRIGGER merchants_keep_all;
ALTER TABLE pay.gateways ENABLE ALWAYS TRIGGER gateways_keep_all;
ALTER TABLE pay.currencies ENABLE ALWAYS TRIGGER currencies_keep_all;

-- pay caches whether a merchant has a notify_url (src/lookup_cache.c), and
-- the gateways and routing rules (src/order_route.c), in every backend; any
-- change of these tables empties the caches built from them.  The same
-- trigger function guards the cached state machine (30_orders.sql).
CREATE FUNCTION pay._cache_invalidate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_cache_invalidate' LANGUAGE C;
CREATE TRIGGER merchants_lookup_cache AFTER UPDATE ON pay.merchants
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.merchants ENABLE ALWAYS TRIGGER merchants_lookup_cache;
CREATE TRIGGER gateways_route_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.gateways
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.gateways ENABLE ALWAYS TRIGGER gateways_route_cache;
CREATE TRIGGER routing_rules_route_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.routing_rules
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.routing_rules ENABLE ALWAYS TRIGGER routing_rules_route_cache;
CREATE TRIGGER rate_limits_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.rate_limits
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.rate_limits ENABLE ALWAYS TRIGGER rate_limits_cache;
-- W3C trace context (src/trace_context.c).  The transaction-local setting
-- pay.traceparent names the trace of the request a transaction serves;
-- pay-proxy passes the request's traceparent header to the route functions,
-- which adopt it.  Rows created store the trace id (pay.orders,
-- pay.callbacks and pay.outbox: trace_id, 32 hex digits); every outbound
-- request carries the same trace id with a new span id.
CREATE FUNCTION pay._trace_id() RETURNS text
    AS 'MODULE_PATHNAME', 'pay_trace_id' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay._trace_id() IS
  'the trace id (32 hex digits) of the setting pay.traceparent, NULL when it is unset or malformed';
CREATE FUNCTION pay._traceparent(trace_id text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_traceparent' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._traceparent(text) IS
  'a traceparent header value for an outbound request: 00-<trace_id>-<new random span id>-01 (NULL unless trace_id is 32 hex digits)';
-- Orders, their state machine, refunds and idempotency keys.

CREATE TABLE pay.order_statuses (
    status      text PRIMARY KEY,
    terminal    boolean NOT NULL
);
INSERT INTO pay.order_statuses VALUES
  ('pending', false), ('paid', false), ('shipped', false), ('completed', false),
  ('cancelled', true), ('failed', false), ('refunded', true);
COMMENT ON TABLE pay.order_statuses IS 'the order statuses; terminal ones have no way out';

-- The state machine is data: the C trigger pay._order_state_guard allows an
-- UPDATE of pay.orders.status only along these edges.
CREATE TABLE pay.order_transitions (
    from_status text NOT NULL,          -- both in pay.order_statuses: triggers below
    to_status   text NOT NULL,
    description text NOT NULL,
    PRIMARY KEY (from_status, to_status),
    CHECK (from_status <> to_status)
);
INSERT INTO pay.order_transitions VALUES
  ('pending',   'paid',      'payment confirmed (PSP callback, mark_paid or wallet)'),
  ('pending',   'cancelled', 'closed by the merchant or expired'),
  ('pending',   'failed',    'the PSP reported a failed payment'),
  ('failed',    'paid',      'a later attempt succeeded (PSPs allow retries after a failure)'),
  ('paid',      'shipped',   'the merchant shipped'),
  ('shipped',   'completed', 'the buyer confirmed receipt'),
  ('paid',      'refunded',  'fully refunded'),
  ('shipped',   'refunded',  'fully refunded'),
  ('completed', 'refunded',  'fully refunded');
COMMENT ON TABLE pay.order_transitions IS 'allowed order status changes; enforced by a C trigger on every UPDATE, for every role';

CREATE TABLE pay.orders (
    id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    merchant_order_no text  NOT NULL,
    -- amount > 0 and 0 <= refunded_amount <= amount: checked by the C trigger
    -- (a CHECK constraint is re-planned on every statement: see order_state.c)
    amount           bigint NOT NULL,
    currency         char(3) NOT NULL,
    -- no CHECK: the C trigger lets a status in only as 'pending' or along an
    -- edge of pay.order_transitions, whose ends are pay.order_statuses
    status           text   NOT NULL DEFAULT 'pending',
    refunded_amount  bigint NOT NULL DEFAULT 0,
    gateway          text,
    psp_txn_id       text,
    paid_account_id  bigint,
    metadata         jsonb  NOT NULL DEFAULT '{}',
    expires_at       timestamptz,
    paid_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    status_cause     text,
    routing_rule_id  bigint,
    -- the W3C trace id of the request that created the order (pay.traceparent)
    trace_id         text,
    UNIQUE (merchant_id, merchant_order_no)
);
COMMENT ON TABLE pay.orders IS 'payment orders; status moves only along pay.order_transitions';
COMMENT ON COLUMN pay.orders.amount IS 'integer minor units of currency';
COMMENT ON COLUMN pay.orders.paid_account_id IS 'the ledger account the payment came from; refunds go back to it';
COMMENT ON COLUMN pay.orders.routing_rule_id IS 'the routing rule that chose the gateway (NULL: asked for, or no rule matched); a record, not a reference: the rule may since be gone';
COMMENT ON COLUMN pay.orders.status_cause IS 'write-only: an UPDATE that changes status may set it to say why; the trigger copies it to pay.order_events and stores NULL';

-- expire_orders touches only pending orders that are due: its cost follows
-- the number expired, not the table size.
CREATE INDEX orders_pending_expiry ON pay.orders (expires_at) WHERE status = 'pending';
-- A PSP transaction pays one order only (NULLS NOT DISTINCT: also among orders without a gateway).
CREATE UNIQUE INDEX orders_gateway_psp_txn ON pay.orders (gateway, psp_txn_id) NULLS NOT DISTINCT
    WHERE psp_txn_id IS NOT NULL;

CREATE TABLE pay.order_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    cause        text NOT NULL,
    actor        name NOT NULL DEFAULT session_user,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order ON pay.order_events (order_id);
COMMENT ON TABLE pay.order_events IS 'one row per order status change, written by the state-machine trigger';

CREATE TABLE pay.refunds (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         bigint NOT NULL,   -- in pay.orders: refunds_order
    amount           bigint NOT NULL CHECK (amount > 0),
    reason           text,
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, idempotency_key)
);
CREATE INDEX refunds_order ON pay.refunds (order_id);
COMMENT ON TABLE pay.refunds IS 'partial or full refunds; their sum never exceeds the order amount';

CREATE TABLE pay.idempotency_keys (
    merchant_id  bigint NOT NULL,
    key          text   NOT NULL,
    request      jsonb  NOT NULL,
    order_id     bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_age ON pay.idempotency_keys (created_at);
COMMENT ON TABLE pay.idempotency_keys IS '(merchant, key) -> the parameters of the first request and the order it created; purged after pay.idempotency_retention';

-- The state machine, in C.
CREATE FUNCTION pay._order_state_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_order_state_guard' LANGUAGE C;

CREATE TRIGGER orders_state_guard BEFORE INSERT OR UPDATE ON pay.orders
    FOR EACH ROW EXECUTE FUNCTION pay._order_state_guard();
-- ENABLE ALWAYS: fires even with session_replication_role = replica.
ALTER TABLE pay.orders ENABLE ALWAYS TRIGGER orders_state_guard;
CREATE TRIGGER order_transitions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON pay.order_transitions FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();

-- References (src/references.c: triggers rather than foreign keys).
CREATE TRIGGER order_transitions_from BEFORE INSERT OR UPDATE OF from_status ON pay.order_transitions
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('from_status', 'pay.order_statuses', 'status');
CREATE TRIGGER order_transitions_to BEFORE INSERT OR UPDATE OF to_status ON pay.order_transitions
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('to_status', 'pay.order_statuses', 'status');
CREATE TRIGGER order_statuses_from BEFORE DELETE OR UPDATE OF status ON pay.order_statuses
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('status', 'pay.order_transitions', 'from_status');
CREATE TRIGGER order_statuses_to BEFORE DELETE OR UPDATE OF status ON pay.order_statuses
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('status', 'pay.order_transitions', 'to_status');
CREATE TRIGGER refunds_order BEFORE INSERT OR UPDATE OF order_id ON pay.refunds
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('order_id', 'pay.orders', 'id');
CREATE TRIGGER orders_refunds BEFORE DELETE ON pay.orders
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('id', 'pay.refunds', 'order_id');
ALTER TABLE pay.order_transitions ENABLE ALWAYS TRIGGER order_transitions_from;
ALTER TABLE pay.order_transitions ENABLE ALWAYS TRIGGER order_transitions_to;
ALTER TABLE pay.order_statuses ENABLE ALWAYS TRIGGER order_statuses_from;
ALTER TABLE pay.order_statuses ENABLE ALWAYS TRIGGER order_statuses_to;
ALTER TABLE pay.refunds ENABLE ALWAYS TRIGGER refunds_order;
ALTER TABLE pay.orders ENABLE ALWAYS TRIGGER orders_refunds;
-- Double-entry ledger: accounts, postings (journal headers) and entries.
--
-- Sign convention: an account's balance is the sum of its entries' amounts;
-- the lines of a posting sum to zero per currency.  Money arriving from a
-- PSP is booked as a negative amount on the gateway's clearing account and a
-- positive amount on the merchant's account.
--
-- Balances are kept in pay.account_balances.  A non-negative account (a
-- wallet) has one row, locked and checked by every posting that touches it.
-- Any other account is split into `slots` rows (8 unless opened otherwise)
-- and a posting adds to the slot chosen by its backend, so that the payments
-- of one merchant do not all queue on one hot row; its balance is the sum of
-- its slots.
--
-- Entries refer to accounts and postings without foreign keys: a foreign-key
-- check locks the parent row (KEY SHARE), which for a merchant's account is
-- the very hot row the slots avoid.  Accounts can never be deleted instead,
-- and entries are only written by pay.post.

CREATE TABLE pay.accounts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code         text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.:@-]{1,128}$'),
    currency     char(3) NOT NULL,      -- in pay.currencies: accounts_currency
    non_negative boolean NOT NULL DEFAULT false,
    slots        smallint NOT NULL CHECK (slots BETWEEN 1 AND 64),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT non_negative OR slots = 1)
);
COMMENT ON TABLE pay.accounts IS 'ledger accounts; a non_negative account can never go below zero';

CREATE TABLE pay.account_balances (
    account_id   bigint NOT NULL,       -- in pay.accounts: account_balances_account
    slot         smallint NOT NULL,
    balance      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, slot)
) WITH (fillfactor = 50);
COMMENT ON TABLE pay.account_balances IS 'running balances; slotted for accounts without a floor, so concurrent postings update different rows';

CREATE TABLE pay.postings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ref          text NOT NULL UNIQUE,          -- 1 to 200 characters: postings_check
    order_id     bigint,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX postings_order ON pay.postings (order_id) WHERE order_id IS NOT NULL;
COMMENT ON TABLE pay.postings IS 'journal headers; ref is unique, so the same business event can never be booked twice';

CREATE TABLE pay.entries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    posting_id   bigint NOT NULL,
    account_id   bigint NOT NULL,
    amount       bigint NOT NULL,               -- not zero: entries_check
    currency     char(3) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_posting ON pay.entries (posting_id);
CREATE INDEX entries_account ON pay.entries (account_id);
COMMENT ON TABLE pay.entries IS 'ledger entries: append-only for every role; each posting sums to zero per currency';

CREATE FUNCTION pay._append_only() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_append_only' LANGUAGE C;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON pay.entries
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON pay.entries
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON pay.postings
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON pay.postings
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER order_events_append_only BEFORE UPDATE OR DELETE ON pay.order_events
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER order_events_no_truncate BEFORE TRUNCATE ON pay.order_events
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
ALTER TABLE pay.entries ENABLE ALWAYS TRIGGER entries_append_only;
ALTER TABLE pay.entries ENABLE ALWAYS TRIGGER entries_no_truncate;
ALTER TABLE pay.postings ENABLE ALWAYS TRIGGER postings_append_only;
ALTER TABLE pay.postings ENABLE ALWAYS TRIGGER postings_no_truncate;
ALTER TABLE pay.order_events ENABLE ALWAYS TRIGGER order_events_append_only;
ALTER TABLE pay.order_events ENABLE ALWAYS TRIGGER order_events_no_truncate;

-- The rules for new journal rows, as C triggers rather than CHECK
-- constraints, which are re-planned on every statement (src/journal_check.c).
CREATE FUNCTION pay._posting_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_posting_check' LANGUAGE C;
CREATE FUNCTION pay._entry_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_entry_check' LANGUAGE C;
CREATE TRIGGER postings_check BEFORE INSERT ON pay.postings
    FOR EACH ROW EXECUTE FUNCTION pay._posting_check();
CREATE TRIGGER entries_check BEFORE INSERT ON pay.entries
    FOR EACH ROW EXECUTE FUNCTION pay._entry_check();
ALTER TABLE pay.postings ENABLE ALWAYS TRIGGER postings_check;
ALTER TABLE pay.entries ENABLE ALWAYS TRIGGER entries_check;

CREATE TRIGGER accounts_keep BEFORE DELETE OR UPDATE OF id, code, currency, non_negative, slots ON pay.accounts
    FOR EACH ROW EXECUTE FUNCTION pay._forbid_parent_change('id, code, currency, floor or slots');
CREATE TRIGGER accounts_keep_all BEFORE TRUNCATE ON pay.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION pay._forbid_parent_change();
ALTER TABLE pay.accounts ENABLE ALWAYS TRIGGER accounts_keep;
ALTER TABLE pay.accounts ENABLE ALWAYS TRIGGER accounts_keep_all;

-- References (src/references.c: triggers rather than foreign keys).
CREATE TRIGGER accounts_currency BEFORE INSERT OR UPDATE OF currency ON pay.accounts
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('currency', 'pay.currencies', 'code');
CREATE TRIGGER account_balances_account BEFORE INSERT OR UPDATE OF account_id ON pay.account_balances
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('account_id', 'pay.accounts', 'id');
ALTER TABLE pay.accounts ENABLE ALWAYS TRIGGER accounts_currency;
ALTER TABLE pay.account_balances ENABLE ALWAYS TRIGGER account_balances_account;
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
   WHERE a.non_negative AND b.balance < 0;
COMMENT ON VIEW pay.ledger_problems IS 'ledger invariants that do not hold; empty when the ledger is sound';
-- Merchant binding: an application role bound to merchants sees and moves
-- only those merchants' orders.  A role counts as bound when it, or a role
-- it is a member of, has a row here; a role with no binding (a platform
-- application, the DBAs' roles) sees every merchant.  Superusers and the
-- extension owner are never bound.
--
-- Reads are filtered by row-level security on pay.orders, pay.order_events
-- and pay.refunds (the tables the application roles may read).  The
-- SECURITY DEFINER functions run as the tables' owner, whom RLS does not
-- filter, so they check the binding themselves: create_order refuses
-- (42501) a merchant the caller is not bound to, and an order of another
-- merchant is, to a bound caller, an order that does not exist.
--
-- The caller inside a SECURITY DEFINER function is the outer role (the
-- session's SET ROLE role, else the session user: pay._outer_role()), not
-- current_user, which is the owner there.

-- (regrole: pg_dump writes the role's name, and a renamed role keeps its
-- bindings.)
CREATE TABLE pay.merchant_roles (
    role         regrole NOT NULL,
    merchant_id  bigint NOT NULL,       -- in pay.merchants: merchant_roles_merchant
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, merchant_id)
);
COMMENT ON TABLE pay.merchant_roles IS
  'which merchants an application role (and every member of it) is bound to; a role with no row here acts for every merchant';
-- References (src/references.c: triggers rather than foreign keys).
CREATE TRIGGER merchant_roles_merchant BEFORE INSERT OR UPDATE OF merchant_id ON pay.merchant_roles
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('merchant_id', 'pay.merchants', 'id');
ALTER TABLE pay.merchant_roles ENABLE ALWAYS TRIGGER merchant_roles_merchant;

CREATE FUNCTION pay._outer_role() RETURNS oid
    AS 'MODULE_PATHNAME', 'pay_outer_role' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay._outer_role() IS
  'internal: the role the caller acts as (SET ROLE''s role, else the session user), also inside SECURITY DEFINER functions';

-- The merchants the caller is bound to, or NULL when it is not bound (it
-- then acts for every merchant).  SECURITY DEFINER: the row-level security
-- policies call it as the querying role, which cannot read the bindings.
CREATE FUNCTION pay._caller_merchants() RETURNS bigint[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role oid;
  v_session oid;
  v_merchants bigint[];
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pay.merchant_roles) THEN
    RETURN NULL;
  END IF;
  v_role := pay._outer_role();
  -- superusers (members of every role) and the owner act for everyone
  IF pg_has_role(v_role, (SELECT c.relowner FROM pg_class c WHERE c.oid = 'pay.orders'::regclass), 'USAGE') THEN
    RETURN NULL;
  END IF;
  -- The login role's bindings hold too: a bound login that is also a
  -- member of pay_app must not shed them with SET ROLE pay_app.  (A
  -- superuser's session is no login of an application.)
  SELECT r.oid INTO v_session FROM pg_roles r WHERE r.rolname = session_user AND NOT r.rolsuper;
  SELECT array_agg(DISTINCT b.merchant_id ORDER BY b.merchant_id) INTO v_merchants
    FROM pay.merchant_roles b
   WHERE pg_has_role(v_role, b.role::oid, 'MEMBER')
      OR (v_session IS NOT NULL AND pg_has_role(v_session, b.role::oid, 'MEMBER'));
  RETURN v_merchants;
END $$;
COMMENT ON FUNCTION pay._caller_merchants() IS
  'internal: the merchants the calling role is bound to (pay.merchant_roles, through role membership); NULL when it is not bound';

-- May the caller act for this merchant (create, move or see its orders)?
-- C (src/merchant_binding.c): with no binding at all it answers from a
-- per-backend flag, since every payment asks; a write to the bindings
-- resets the flag in every backend.
CREATE FUNCTION pay._acts_for(merchant_id bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_acts_for' LANGUAGE C STABLE;
COMMENT ON FUNCTION pay._acts_for(bigint) IS
  'internal: whether the calling role may act for the merchant (not bound, or bound to it); true for NULL';
CREATE TRIGGER merchant_roles_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.merchant_roles
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.merchant_roles ENABLE ALWAYS TRIGGER merchant_roles_cache;

CREATE FUNCTION pay.bind_merchant_role(role regrole, merchant text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
BEGIN
  IF role IS NULL THEN
    RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_merchant := pay._merchant_id(merchant);
  INSERT INTO pay.merchant_roles (role, merchant_id) VALUES (role, v_merchant)
    ON CONFLICT DO NOTHING;
  RETURN FOUND;
END $$;
COMMENT ON FUNCTION pay.bind_merchant_role(regrole, text) IS
  'binds a role (and its members) to a merchant: from then on it sees and moves only the orders of the merchants it is bound to; true if the binding is new';

CREATE FUNCTION pay.unbind_merchant_role(role regrole, merchant text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
BEGIN
  v_merchant := pay._merchant_id(merchant);
  DELETE FROM pay.merchant_roles b WHERE b.role = unbind_merchant_role.role AND b.merchant_id = v_merchant;
  RETURN FOUND;
END $$;
COMMENT ON FUNCTION pay.unbind_merchant_role(regrole, text) IS
  'removes a binding of a role to a merchant (a role left with none acts for every merchant again); true if it existed';

-- Reads: a bound role's queries see only its merchants' rows.  The
-- function runs once per query (an InitPlan), not once per row; for an
-- unbound role the first branch is true and the rest is not evaluated.
ALTER TABLE pay.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE pay.order_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE pay.refunds ENABLE ROW LEVEL SECURITY;
CREATE POLICY orders_merchant_binding ON pay.orders FOR SELECT
  USING ((SELECT pay._caller_merchants()) IS NULL
         OR merchant_id OPERATOR(pg_catalog.=) ANY ((SELECT pay._caller_merchants())::bigint[]));
CREATE POLICY order_events_merchant_binding ON pay.order_events FOR SELECT
  USING ((SELECT pay._caller_merchants()) IS NULL
         OR EXISTS (SELECT 1 FROM pay.orders o
                     WHERE o.id OPERATOR(pg_catalog.=) order_events.order_id
                       AND o.merchant_id OPERATOR(pg_catalog.=) ANY ((SELECT pay._caller_merchants())::bigint[])));
CREATE POLICY refunds_merchant_binding ON pay.refunds FOR SELECT
  USING ((SELECT pay._caller_merchants()) IS NULL
         OR EXISTS (SELECT 1 FROM pay.orders o
                     WHERE o.id OPERATOR(pg_catalog.=) refunds.order_id
                       AND o.merchant_id OPERATOR(pg_catalog.=) ANY ((SELECT pay._caller_merchants())::bigint[])));
-- Order functions: merchants, gateways, creating and moving orders.

CREATE FUNCTION pay._amount_max(exponent integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_amount_max' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pay._parse_amount(amount text, exponent integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_parse_amount_exp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pay._format_amount(amount bigint, exponent integer) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_format_amount_exp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pay.idempotency_retention() RETURNS interval
    AS 'MODULE_PATHNAME', 'pay_idempotency_retention' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay.idempotency_retention() IS 'the setting pay.idempotency_retention as an interval';

-- The exponent of a currency, or a clear error naming the argument
-- (src/lookup_sql.c, from a per-backend cache of pay.currencies).  These C
-- lookups are VOLATILE: a miss reads the table with a fresh snapshot, so
-- that a row written earlier in the same transaction is seen.
CREATE FUNCTION pay._exponent(p_currency text, p_arg text DEFAULT 'currency') RETURNS smallint
    AS 'MODULE_PATHNAME', 'pay_exponent' LANGUAGE C VOLATILE;
-- A merchant's id by code, or 'merchant: unknown merchant'.
CREATE FUNCTION pay._merchant_id(p_code text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_merchant_id' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.parse_amount(amount text, currency text) RETURNS bigint
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
RETURN pay._parse_amount(amount, pay._exponent(currency));
COMMENT ON FUNCTION pay.parse_amount(text, text) IS
  'major-unit decimal text to minor units, exactly (''12.34'', ''CNY'' -> 1234); never through floating point';

CREATE FUNCTION pay.format_amount(amount bigint, currency text) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
RETURN pay._format_amount(amount, pay._exponent(currency));
COMMENT ON FUNCTION pay.format_amount(bigint, text) IS
  'minor units to major-unit decimal text (1234, ''KWD'' -> ''1.234'')';

CREATE FUNCTION pay.create_merchant(code text, name text, notify_url text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
BEGIN
  IF code IS NULL OR code !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
    RAISE EXCEPTION 'code must be 1 to 64 letters, digits or _.-' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF name IS NULL OR length(btrim(name)) = 0 OR length(name) > 200 THEN
    RAISE EXCEPTION 'name must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF notify_url IS NOT NULL AND (notify_url !~ '^https?://[^[:space:]]+$' OR length(notify_url) > 2000) THEN
    RAISE EXCEPTION 'notify_url must be an http or https URL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._check_destination('notify_url', notify_url);
  INSERT INTO pay.merchants (code, name, notify_url)
    VALUES (create_merchant.code, create_merchant.name, create_merchant.notify_url)
    RETURNING id INTO v_id;
  RETURN v_id;
END $$;
COMMENT ON FUNCTION pay.create_merchant(text, text, text) IS 'registers a merchant; code is its public identifier';

CREATE FUNCTION pay.create_gateway(name text, kind text, base_url text DEFAULT NULL,
                                   options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
BEGIN
  IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
    RAISE EXCEPTION 'name must be 1 to 64 letters, digits or _.-' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF kind IS NULL OR kind NOT IN ('stripe', 'alipay', 'wechatpay', 'adyen', 'paypal', 'generic') THEN
    RAISE EXCEPTION 'kind must be one of stripe, alipay, wechatpay, adyen, paypal, generic; not "%"', kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF base_url IS NOT NULL AND base_url !~ '^https?://[^[:space:]]+$' THEN
    RAISE EXCEPTION 'base_url must be an http or https URL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._check_destination('base_url', base_url);
  IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.gateways (name, kind, base_url, options)
    VALUES (create_gateway.name, create_gateway.kind, create_gateway.base_url, create_gateway.options)
    RETURNING id INTO v_id;
  RETURN v_id;
END $$;
COMMENT ON FUNCTION pay.create_gateway(text, text, text, jsonb) IS
  'registers a payment gateway; its credentials go into the secret store';

CREATE FUNCTION pay.add_routing_rule(gateway text, merchant text DEFAULT NULL, currency text DEFAULT NULL,
                                     priority integer DEFAULT 100, min_amount bigint DEFAULT NULL,
                                     max_amount bigint DEFAULT NULL, weight integer DEFAULT 1) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_gateway bigint;
  v_merchant bigint;
  v_id bigint;
BEGIN
  SELECT id INTO v_gateway FROM pay.gateways g WHERE g.name = gateway;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'gateway: unknown gateway "%"', gateway USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF merchant IS NOT NULL THEN
    SELECT id INTO v_merchant FROM pay.merchants m WHERE m.code = merchant;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'merchant: unknown merchant "%"', merchant USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;
  IF currency IS NOT NULL THEN
    PERFORM pay._exponent(currency);
  END IF;
  IF min_amount < 0 THEN
    RAISE EXCEPTION 'min_amount must not be negative, not %', min_amount USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_amount < 0 THEN
    RAISE EXCEPTION 'max_amount must not be negative, not %', max_amount USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF min_amount > max_amount THEN
    RAISE EXCEPTION 'min_amount % is greater than max_amount %', min_amount, max_amount
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF weight IS NULL OR weight < 1 THEN
    RAISE EXCEPTION 'weight must be at least 1, not %', coalesce(weight::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.routing_rules (merchant_id, currency, gateway_id, priority, min_amount, max_amount, weight)
    VALUES (v_merchant, currency, v_gateway, coalesce(priority, 100), min_amount, max_amount, weight)
    RETURNING id INTO v_id;
  RETURN v_id;
END $$;
COMMENT ON FUNCTION pay.add_routing_rule(text, text, text, integer, bigint, bigint, integer) IS
  'routes orders created without a gateway: lowest priority first; NULL merchant, currency or amount bound matches any; inclusive amount bounds in minor units; a tier splits by weight';

CREATE FUNCTION pay.set_routing_rule_reroute(rule_id bigint, reroute boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF reroute IS NULL THEN
    RAISE EXCEPTION 'reroute must be true or false' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE pay.routing_rules r SET reroute = set_routing_rule_reroute.reroute WHERE r.id = rule_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'rule_id: routing rule % does not exist', coalesce(rule_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;
COMMENT ON FUNCTION pay.set_routing_rule_reroute(bigint, boolean) IS
  'on: a pending order the rule routed moves once to the next available gateway when its create_payment request is refused (4xx), dead after its retries, or held by an open circuit before it was sent';

-- Validates every argument of create_order before anything is written
-- (src/order_args.c).
CREATE FUNCTION pay._check_order_args(p_merchant_order_no text, p_amount bigint, p_exponent smallint,
                                      p_expires_in interval, p_metadata jsonb, p_key text)
RETURNS void
    AS 'MODULE_PATHNAME', 'pay_check_order_args' LANGUAGE C STABLE;

-- The gateway an order goes to, and the rule that chose it: the gateway
-- asked for (it must exist and be enabled; no rule), else among the
-- matching rules of the lowest priority whose gateway is enabled and whose
-- circuit is not open, one by weight at a point given by (merchant,
-- order number) — the heaviest without an order number — else the first
-- enabled match, else none (src/order_route.c).
CREATE FUNCTION pay._route(p_gateway text, p_merchant bigint, p_currency text, p_amount bigint,
                           p_order_no text, OUT gateway text, OUT rule_id bigint)
    AS 'MODULE_PATHNAME', 'pay_route' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.route(merchant text, amount bigint, currency text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint := pay._merchant_id(merchant);
  v_gateway text;
BEGIN
  IF amount IS NULL OR amount <= 0 THEN
    RAISE EXCEPTION 'amount must be a positive number of minor units, not %', coalesce(amount::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._exponent(currency);
  SELECT r.gateway INTO v_gateway FROM pay._route(NULL, v_merchant, currency, amount, NULL) r;
  RETURN v_gateway;
END $$;
COMMENT ON FUNCTION pay.route(text, bigint, text) IS
  'the gateway a new order without one would get now (a weighted tier answers with its heaviest rule); NULL: no rule matches';

-- A new order's admission, called by create_order's INSERT (src/order_admit.c):
-- one token of the merchant's rate limit (src/rate_limit.c: PY029, with the
-- seconds until the next token in DETAIL), then its route as pay._route.
CREATE FUNCTION pay._admit(p_merchant bigint, p_code text, p_gateway text, p_currency text,
                           p_amount bigint, p_order_no text, OUT gateway text, OUT rule_id bigint)
    AS 'MODULE_PATHNAME', 'pay_admit' LANGUAGE C VOLATILE;
CREATE FUNCTION pay._rate_limits_active() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_rate_limits_active' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.set_rate_limit(merchant text, per_second numeric, burst integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint := pay._merchant_id(merchant);
BEGIN
  IF per_second IS NULL THEN
    DELETE FROM pay.rate_limits l WHERE l.merchant_id = v_merchant;
    RETURN;
  END IF;
  IF per_second <= 0 OR per_second > 1000000000 THEN
    RAISE EXCEPTION 'per_second must be greater than 0 (and at most 1e9), not %', per_second
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF burst IS NULL OR burst < 1 THEN
    RAISE EXCEPTION 'burst must be at least 1, not %', coalesce(burst::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT pay._rate_limits_active() THEN
    RAISE EXCEPTION 'rate limits need pay in shared_preload_libraries'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO pay.rate_limits (merchant_id, per_second, burst)
    VALUES (v_merchant, set_rate_limit.per_second, set_rate_limit.burst)
    ON CONFLICT (merchant_id) DO UPDATE
      SET per_second = excluded.per_second, burst = excluded.burst, updated_at = now();
END $$;
COMMENT ON FUNCTION pay.set_rate_limit(text, numeric, integer) IS
  'limits the merchant''s create_order to per_second with bursts of burst (a token bucket in shared memory; PY029 beyond); NULL per_second removes it (pay.default_rate_limit applies)';

CREATE FUNCTION pay.create_order(merchant text, merchant_order_no text, amount bigint, currency text,
                                 idempotency_key text DEFAULT NULL,
                                 expires_in interval DEFAULT '15 minutes',
                                 metadata jsonb DEFAULT '{}', gateway text DEFAULT NULL)
RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
  v_id bigint;
  v_request jsonb;
  v_key pay.idempotency_keys;
  o pay.orders;
  v_admitted record;
BEGIN
  v_merchant := pay._merchant_id(merchant);
  -- merchant binding (53_merchant_binding.sql)
  IF NOT pay._acts_for(v_merchant) THEN
    RAISE EXCEPTION 'merchant: role "%" is not bound to merchant "%"',
      pay._outer_role()::regrole, merchant USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM pay._check_order_args(merchant_order_no, amount, pay._exponent(currency),
                                expires_in, metadata, idempotency_key);
  v_id := nextval('pay.orders_id_seq');

  IF idempotency_key IS NOT NULL THEN
    v_request := jsonb_build_object('merchant_order_no', merchant_order_no, 'amount', amount,
                                    'currency', currency, 'expires_in', expires_in,
                                    'metadata', metadata, 'gateway', gateway);
    -- A racing caller with the same key waits here until the first commits.
    INSERT INTO pay.idempotency_keys (merchant_id, key, request, order_id)
      VALUES (v_merchant, idempotency_key, v_request, v_id)
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT * INTO v_key FROM pay.idempotency_keys k
       WHERE k.merchant_id = v_merchant AND k.key = idempotency_key;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'idempotency key "%" is in use by a transaction this snapshot cannot see', idempotency_key
          USING ERRCODE = 'serialization_failure', HINT = 'Retry the call.';
      END IF;
      IF v_key.request <> v_request THEN
        RAISE EXCEPTION 'idempotency_key "%" was already used with different parameters', idempotency_key
          USING ERRCODE = 'PY002', DETAIL = format('First request: %s', v_key.request);
      END IF;
      SELECT * INTO STRICT o FROM pay.orders WHERE id = v_key.order_id;
      RETURN o;
    END IF;
  END IF;

  -- a token of the merchant's rate limit (a replay, returned above, costs
  -- none) and the route; an assignment, not a query (no FROM to plan)
  v_admitted := pay._admit(v_merchant, create_order.merchant, create_order.gateway, create_order.currency,
                           create_order.amount, create_order.merchant_order_no);
  INSERT INTO pay.orders (id, merchant_id, merchant_order_no, amount, currency, gateway, metadata, expires_at,
                          routing_rule_id)
    VALUES (v_id, v_merchant, create_order.merchant_order_no, create_order.amount, create_order.currency,
            v_admitted.gateway, create_order.metadata, now() + create_order.expires_in, v_admitted.rule_id)
    RETURNING * INTO o;
  RETURN o;
END $$;
COMMENT ON FUNCTION pay.create_order(text, text, bigint, text, text, interval, jsonb, text) IS
  'creates a pending order; the same (merchant, idempotency_key) returns the same order, different parameters raise PY002; PY029 beyond the merchant''s rate limit';

-- Lock an order for a state change, or fail naming the argument.  To a
-- caller bound to other merchants (53_merchant_binding.sql) another
-- merchant's order does not exist: the same error as for a missing one.
CREATE FUNCTION pay._lock_order(p_order_id bigint) RETURNS pay.orders
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
BEGIN
  SELECT * INTO o FROM pay.orders WHERE id = p_order_id FOR UPDATE;
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(p_order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN o;
END $$;

-- Books the payment of a locked pending or failed order that a PSP
-- confirmed: the order becomes paid, the ledger moves the money from the
-- gateway's clearing account to the merchant.  Shared by mark_paid and the
-- callback path (src/order_settle.c).
CREATE FUNCTION pay._settle(o pay.orders, p_psp_txn_id text, p_cause text) RETURNS pay.orders
    AS 'MODULE_PATHNAME', 'pay_settle' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.mark_paid(order_id bigint, psp_txn_id text, amount bigint, currency text)
RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
BEGIN
  IF psp_txn_id IS NULL OR length(psp_txn_id) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'psp_txn_id must be 1 to 128 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  o := pay._lock_order(order_id);
  IF amount IS DISTINCT FROM o.amount THEN
    RAISE EXCEPTION 'amount % does not match the amount % of order %', coalesce(amount::text, 'null'), o.amount, o.id
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF currency IS DISTINCT FROM o.currency THEN
    RAISE EXCEPTION 'currency % does not match the currency % of order %', coalesce(currency, 'null'), o.currency, o.id
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A retry of the same confirmation is answered, not refused.
  IF o.status IN ('paid', 'shipped', 'completed', 'refunded') AND o.psp_txn_id = mark_paid.psp_txn_id THEN
    RETURN o;
  END IF;

  IF o.paid_at IS NOT NULL THEN
    RAISE EXCEPTION 'order % is already paid, by psp_txn_id %', o.id, coalesce(o.psp_txn_id, '(none: wallet)')
      USING ERRCODE = 'PY001';
  ELSIF o.status NOT IN ('pending', 'failed') THEN
    RAISE EXCEPTION 'order % is %; only a pending or failed order can be paid', o.id, o.status
      USING ERRCODE = 'PY001';
  END IF;

  RETURN pay._settle(o, mark_paid.psp_txn_id, 'mark_paid');
END $$;
COMMENT ON FUNCTION pay.mark_paid(bigint, text, bigint, text) IS
  'confirms payment of an order (amount and currency must match) and books it in the ledger';

CREATE FUNCTION pay.pay_with_balance(order_id bigint, wallet text) RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  w pay.accounts;
BEGIN
  o := pay._lock_order(order_id);
  IF o.status NOT IN ('pending', 'failed') THEN
    RAISE EXCEPTION 'order % is %; only a pending order can be paid', o.id, o.status USING ERRCODE = 'PY001';
  END IF;
  SELECT * INTO w FROM pay.accounts a WHERE a.code = wallet;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'wallet: unknown account "%"', wallet USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT w.non_negative THEN
    RAISE EXCEPTION 'wallet: account "%" is not a non-negative wallet account', wallet
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF w.currency <> o.currency THEN
    RAISE EXCEPTION 'wallet: account "%" holds %, order % is in %', wallet, w.currency, o.id, o.currency
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE pay.orders
     SET status = 'paid', status_cause = 'pay_with_balance', paid_at = now(), paid_account_id = w.id
   WHERE id = o.id
  RETURNING * INTO o;
  PERFORM pay._post('order:' || o.id || ':paid', o.id,
                    ARRAY[w.id, pay._merchant_account(o.merchant_id, o.currency)], ARRAY[-o.amount, o.amount]);
  RETURN o;
END $$;
COMMENT ON FUNCTION pay.pay_with_balance(bigint, text) IS
  'pays a pending order from a non-negative wallet account (PY003 when the balance is short)';

-- Moves an order to a status; the trigger refuses illegal moves with PY001.
-- Asking for the status the order already has changes nothing (a retried
-- ship or cancel is answered, not refused).
CREATE FUNCTION pay._move(p_order_id bigint, p_status text, p_cause text) RETURNS pay.orders
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
BEGIN
  o := pay._lock_order(p_order_id);
  UPDATE pay.orders SET status = p_status, status_cause = p_cause WHERE id = o.id RETURNING * INTO o;
  RETURN o;
END $$;

CREATE FUNCTION pay.ship(order_id bigint) RETURNS pay.orders
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN pay._move(order_id, 'shipped', 'ship');
COMMENT ON FUNCTION pay.ship(bigint) IS 'paid -> shipped';

CREATE FUNCTION pay.complete(order_id bigint) RETURNS pay.orders
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN pay._move(order_id, 'completed', 'complete');
COMMENT ON FUNCTION pay.complete(bigint) IS 'shipped -> completed';

CREATE FUNCTION pay.cancel(order_id bigint, reason text DEFAULT NULL) RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF length(reason) > 500 THEN
    RAISE EXCEPTION 'reason is longer than 500 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN pay._move(order_id, 'cancelled', coalesce('cancel: ' || reason, 'cancel'));
END $$;
COMMENT ON FUNCTION pay.cancel(bigint, text) IS 'pending -> cancelled';

-- Books a refund of a locked paid order whose refundable amount was
-- checked: a refund row, the order's refunded amount (and status refunded
-- once all of it is back), and the ledger moving the money from the
-- merchant back to where it came from.  Shared by refund and callbacks.
CREATE FUNCTION pay._book_refund(o pay.orders, p_amount bigint, p_reason text, p_key text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO pay.refunds (order_id, amount, reason, idempotency_key)
    VALUES (o.id, p_amount, p_reason, p_key) RETURNING id INTO v_id;
  UPDATE pay.orders
     SET refunded_amount = refunded_amount + p_amount,
         status = CASE WHEN refunded_amount + p_amount = amount THEN 'refunded' ELSE status END,
         status_cause = 'refund'
   WHERE id = o.id;
  PERFORM pay._post('refund:' || v_id, o.id,
                    ARRAY[pay._merchant_account(o.merchant_id, o.currency), o.paid_account_id], ARRAY[-p_amount, p_amount]);
  -- the merchant hears of every refund (a full one also as the move to refunded)
  PERFORM pay.enqueue_merchant_notification(o.id, 'refund_' || v_id);
  RETURN v_id;
END $$;

CREATE FUNCTION pay.refund(order_id bigint, amount bigint, reason text DEFAULT NULL,
                           idempotency_key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  r pay.refunds;
BEGIN
  IF amount IS NULL OR amount <= 0 THEN
    RAISE EXCEPTION 'amount must be a positive number of minor units, not %', coalesce(amount::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF length(reason) > 500 THEN
    RAISE EXCEPTION 'reason is longer than 500 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF idempotency_key IS NOT NULL AND length(idempotency_key) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'idempotency_key must be 1 to 255 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The order's row lock serialises its refunds: the sum check below cannot race.
  o := pay._lock_order(order_id);
  IF idempotency_key IS NOT NULL THEN
    SELECT * INTO r FROM pay.refunds f WHERE f.order_id = o.id AND f.idempotency_key = refund.idempotency_key;
    IF FOUND THEN
      IF r.amount <> amount THEN
        RAISE EXCEPTION 'idempotency_key "%" was already used for a refund of %', idempotency_key, r.amount
          USING ERRCODE = 'PY002';
      END IF;
      RETURN r.id;
    END IF;
  END IF;
  IF o.status NOT IN ('paid', 'shipped', 'completed') THEN
    RAISE EXCEPTION 'order % is %; only a paid, shipped or completed order can be refunded', o.id, o.status
      USING ERRCODE = 'PY001';
  END IF;
  IF amount > o.amount - o.refunded_amount THEN
    RAISE EXCEPTION 'refund of % exceeds the refundable amount % of order %', amount, o.amount - o.refunded_amount, o.id
      USING ERRCODE = 'PY005';
  END IF;
  r.id := pay._book_refund(o, amount, reason, idempotency_key);
  -- money paid through a PSP goes back through it: queue the refund request
  -- in this transaction (a wallet payment is returned by the ledger alone)
  IF o.gateway IS NOT NULL
     AND EXISTS (SELECT 1 FROM pay.accounts a WHERE a.id = o.paid_account_id AND a.code LIKE 'psp:%') THEN
    PERFORM pay.enqueue_psp_request(o.id, 'refund', jsonb_build_object('refund_id', r.id));
  END IF;
  RETURN r.id;
END $$;
COMMENT ON FUNCTION pay.refund(bigint, bigint, text, text) IS
  'refunds part or all of a paid order back to where the money came from (queuing the PSP refund request); PY005 past the paid amount';

CREATE FUNCTION pay.expire_orders(at timestamptz DEFAULT now(), max_orders integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF max_orders IS NULL OR max_orders < 1 THEN
    RAISE EXCEPTION 'max_orders must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Only due pending orders are read (partial index orders_pending_expiry);
  -- an order being paid right now is skipped, not waited for.
  WITH due AS (
    SELECT id FROM pay.orders
     WHERE status = 'pending' AND expires_at <= expire_orders.at
     ORDER BY expires_at
     LIMIT max_orders
     FOR UPDATE SKIP LOCKED)
  UPDATE pay.orders o SET status = 'cancelled', status_cause = 'expired'
    FROM due WHERE o.id = due.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.expire_orders(timestamptz, integer) IS
  'cancels pending orders whose expires_at has passed (at most max_orders per call); returns how many';

CREATE FUNCTION pay.purge_idempotency_keys(older_than interval DEFAULT NULL, max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM pay.idempotency_keys k
   WHERE (k.merchant_id, k.key) IN (
     SELECT merchant_id, key FROM pay.idempotency_keys
      WHERE created_at < now() - coalesce(older_than, pay.idempotency_retention())
      LIMIT max_rows);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_idempotency_keys(interval, integer) IS
  'deletes idempotency keys older than pay.idempotency_retention (default 24 h); returns how many';

-- For DBAs: orders whose ledger does not explain their money.  Empty when sound.
CREATE VIEW pay.order_ledger_mismatches AS
  SELECT o.id AS order_id, o.status, o.amount, o.refunded_amount,
         coalesce(l.merchant_net, 0) AS merchant_net
    FROM pay.orders o
    LEFT JOIN (
      SELECT p.order_id, sum(e.amount) AS merchant_net
        FROM pay.postings p
        JOIN pay.entries e ON e.posting_id = p.id
        JOIN pay.accounts a ON a.id = e.account_id AND a.code LIKE 'merchant:%'
       WHERE p.order_id IS NOT NULL
       GROUP BY p.order_id) l ON l.order_id = o.id
   WHERE coalesce(l.merchant_net, 0) <>
         CASE WHEN o.paid_at IS NULL THEN 0 ELSE o.amount - o.refunded_amount END;
COMMENT ON VIEW pay.order_ledger_mismatches IS
  'orders whose merchant ledger postings differ from amount paid minus refunded; empty when sound';
-- Protocol helpers shared by the callback and notification paths.

CREATE FUNCTION pay.parse_form(body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_parse_form' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.parse_form(text) IS
  'an application/x-www-form-urlencoded body as a jsonb object of strings; repeated fields are refused';

CREATE FUNCTION pay.constant_time_equal(a text, b text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_constant_time_equal' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.constant_time_equal(text, text) IS
  'compares two signatures in time that depends only on their lengths';

-- What the HTTP-facing functions (handle_callback, the merchant API) answer;
-- pay-proxy sends it as it is.  (A named type rather than RETURNS TABLE:
-- a column "body" would clash with handle_callback's argument "body".)
CREATE TYPE pay.http_response AS (http_status integer, content_type text, body text);
COMMENT ON TYPE pay.http_response IS 'an HTTP answer: status, content type and body, sent by pay-proxy as is';

-- Header names compare case-insensitively: one object with lower-case names.
CREATE FUNCTION pay._lower_headers(headers jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_lower_headers' LANGUAGE C IMMUTABLE;
-- The secret store: credentials sealed with AES-256-GCM under a master key
-- that only the server reads, from the file named by the superuser-only
-- setting pay.master_key_file (src/secret_store.c).
--
-- Master key rotation, step by step (the DBA, as superuser):
--   1. write the new key file (64 hex digits, or a passphrase) next to the old one;
--   2. SELECT pay.rotate_master_key('/path/to/new.key');
--        re-encrypts every secret in this one transaction; from its commit on,
--        THIS session's pay.master_key_file names the new file;
--   3. ALTER SYSTEM SET pay.master_key_file = '/path/to/new.key';
--      SELECT pg_reload_conf();
--        every other session follows at its next command (between 2 and 3
--        they get a clear "does not hold master key generation N" error,
--        never a wrong value);
--   4. shred the old key file.

-- Master key generations.  Exactly one is current; every secret is sealed
-- under it.  Nothing here is secret: the key check is HMAC-SHA256(key,
-- 'pay master key check v1') and only tells a wrong key file from a damaged
-- ciphertext.
CREATE TABLE pay.master_keys (
    id          integer PRIMARY KEY CHECK (id > 0),
    kind        text NOT NULL CHECK (kind IN ('raw', 'pbkdf2-hmac-sha256')),
    salt        bytea CHECK (octet_length(salt) = 16),
    iterations  integer CHECK (iterations BETWEEN 600000 AND 100000000),
    key_check   bytea NOT NULL CHECK (octet_length(key_check) = 32),
    is_current  boolean NOT NULL DEFAULT true,
    key_file    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    CHECK ((kind = 'raw') = (salt IS NULL AND iterations IS NULL)),
    CHECK (kind = 'raw' OR (salt IS NOT NULL AND iterations IS NOT NULL)),
    CHECK (is_current = (retired_at IS NULL))
);
CREATE UNIQUE INDEX master_keys_one_current ON pay.master_keys ((true)) WHERE is_current;
COMMENT ON TABLE pay.master_keys IS
  'master key generations of the secret store: kind of key file, PBKDF2 salt and iterations, key check; the key itself is only in the file named by pay.master_key_file';
COMMENT ON COLUMN pay.master_keys.key_file IS 'the file the generation was created from (for the DBA; the setting decides)';

-- One credential per (owner, name).  ciphertext = AES-256-GCM of the value
-- with a random 12-byte nonce; the associated data is the length-prefixed
-- (owner, name), so a ciphertext copied to another row does not decrypt.
CREATE TABLE pay.secrets (
    owner         text NOT NULL CHECK (octet_length(owner) <= 200
                                       AND owner ~ '^[a-z][a-z0-9_]*:[^[:cntrl:]]+$'),
    name          text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 200
                                       AND name !~ '[[:cntrl:]]'),
    master_key_id integer NOT NULL,     -- in pay.master_keys: secrets_master_key
    nonce         bytea NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext    bytea NOT NULL CHECK (octet_length(ciphertext) BETWEEN 1 AND 65536),
    tag           bytea NOT NULL CHECK (octet_length(tag) = 16),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);
COMMENT ON TABLE pay.secrets IS
  'credentials sealed with AES-256-GCM under the current master key; readable by the extension owner only (see pay.secret_list)';

-- Backends keep the sealed rows they use (src/secret_cache.c): any write
-- to either table tells every backend to drop them.
CREATE TRIGGER master_keys_secret_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.master_keys
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER secrets_secret_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.secrets
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.master_keys ENABLE ALWAYS TRIGGER master_keys_secret_cache;
ALTER TABLE pay.secrets ENABLE ALWAYS TRIGGER secrets_secret_cache;

-- References (src/references.c: triggers rather than foreign keys).
CREATE TRIGGER secrets_master_key BEFORE INSERT OR UPDATE OF master_key_id ON pay.secrets
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('master_key_id', 'pay.master_keys', 'id');
CREATE TRIGGER master_keys_secrets BEFORE DELETE OR UPDATE OF id ON pay.master_keys
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('id', 'pay.secrets', 'master_key_id');
ALTER TABLE pay.secrets ENABLE ALWAYS TRIGGER secrets_master_key;
ALTER TABLE pay.master_keys ENABLE ALWAYS TRIGGER master_keys_secrets;

CREATE VIEW pay.secret_list AS
  SELECT owner, name, master_key_id, created_at, updated_at
  FROM pay.secrets;
COMMENT ON VIEW pay.secret_list IS 'which secrets exist, without their values (for pay_admin)';

-- Writing a credential is pay_admin's job (it sets up gateways and
-- merchants); reading one back is nobody's but the owner's.
CREATE FUNCTION pay.set_secret(owner text, name text, value text) RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pay_set_secret';
COMMENT ON FUNCTION pay.set_secret(text, text, text) IS
  'stores (or replaces) a credential sealed under the current master key; the first call creates master key generation 1 from pay.master_key_file. Owner and pay_admin (write only: no role reads a value back). Pass the value as a bind parameter: statement logging can record literals';

CREATE FUNCTION pay.reveal_secret(owner text, name text) RETURNS text
LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'pay_reveal_secret';
COMMENT ON FUNCTION pay.reveal_secret(text, text) IS
  'the plaintext of a credential; owner only (no role is granted it)';

CREATE FUNCTION pay.delete_secret(owner text, name text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH gone AS (
    DELETE FROM pay.secrets s WHERE s.owner = $1 AND s.name = $2 RETURNING 1
  )
  SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION pay.delete_secret(text, text) IS 'deletes a credential; true if it existed. Owner and pay_admin';

CREATE FUNCTION pay.rotate_master_key(new_key_file text) RETURNS integer
LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pay_rotate_master_key';
COMMENT ON FUNCTION pay.rotate_master_key(text) IS
  're-encrypts every secret under the key in new_key_file (a new master key generation) in one transaction and returns how many; this session then uses the new file, the DBA points pay.master_key_file at it. Superuser only';

CREATE FUNCTION pay.secret_hmac_sha256_hex(owner text, name text, message text) RETURNS text
LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'pay_secret_hmac_sha256_hex';
COMMENT ON FUNCTION pay.secret_hmac_sha256_hex(text, text, text) IS
  'hex HMAC-SHA256 of message keyed with a stored credential, without revealing it; owner only (no role is granted it)';

-- No role but the owner computes anything with a stored secret: whoever
-- can sign with one can forge what it authenticates (a PSP's callback, a
-- merchant's API request, a notification).  The tables, reveal, set,
-- delete, rotate and secret_hmac_sha256_hex are granted to nobody, and the
-- C functions refuse any caller without the owner's privileges.  The roles
-- use secrets only inside the SECURITY DEFINER functions that need them
-- (pay.handle_callback, the merchant API, the dispatcher); pay_admin and
-- pay_readonly see which secrets exist.
REVOKE ALL ON pay.master_keys, pay.secrets, pay.secret_list FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    pay.set_secret(text, text, text), pay.reveal_secret(text, text),
    pay.delete_secret(text, text), pay.rotate_master_key(text),
    pay.secret_hmac_sha256_hex(text, text, text)
  FROM PUBLIC;
GRANT SELECT ON pay.secret_list TO pay_admin, pay_readonly;
GRANT EXECUTE ON FUNCTION pay.set_secret(text, text, text), pay.delete_secret(text, text) TO pay_admin;
-- The canonical parameter string that HMAC, SHA-256 and RSA2 signatures cover
-- (src/sign_canonical.c, src/crypto/canonical.c).

CREATE FUNCTION pay.canonical_query(params jsonb, exclude text[] DEFAULT '{sign,sign_type}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_canonical_query'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.canonical_query(jsonb, text[]) IS
    'the canonical parameter string of a JSON object: keys in byte order, k=v joined by &, values unescaped (nested values as compact JSON); excluded keys, null and empty values left out';
GRANT EXECUTE ON FUNCTION pay.canonical_query(jsonb, text[]) TO pay_app, pay_admin;
-- The HMAC family of signatures (src/sign_hmac.c, src/crypto/hmac.c,
-- src/crypto/stripe.c, src/crypto/adyen.c): pure functions, no table access.
-- Signing functions are STRICT (NULL in, NULL out); the _valid functions are
-- not: a missing signature is invalid (false), a missing key an error.

CREATE FUNCTION pay.hmac_sha256_hex(key text, message text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_hmac_sha256_hex'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.hmac_sha256_hex(text, text) IS
    'lower-case hex HMAC-SHA256 of message under key (both as their UTF-8 bytes)';

CREATE FUNCTION pay.sign_params(params jsonb, secret text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_sign_params'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.sign_params(jsonb, text) IS
    'lower-case hex HMAC-SHA256 under secret of pay.canonical_query(params) (sign and sign_type left out)';

CREATE FUNCTION pay.sign_params_sha256(params jsonb, secret text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_sign_params_sha256'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.sign_params_sha256(jsonb, text) IS
    'the SHA-256-with-secret scheme: lower-case hex SHA-256 of pay.canonical_query(params) with secret appended';

CREATE FUNCTION pay.stripe_signature_header(payload text, secret text, at timestamptz DEFAULT now())
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_stripe_signature_header'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.stripe_signature_header(text, text, timestamptz) IS
    'a Stripe-Signature header "t=<unix>,v1=<hex HMAC-SHA256 of t.payload>" for payload, signed with the endpoint secret at time at';

CREATE FUNCTION pay.stripe_signature_valid(payload text, header text, secret text,
                                           tolerance_s integer DEFAULT 300, at timestamptz DEFAULT now())
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_stripe_signature_valid'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay.stripe_signature_valid(text, text, text, integer, timestamptz) IS
    'true when a v1 signature of the Stripe-Signature header matches payload under secret and |at - t| <= tolerance_s (0: no time check); false for anything else, malformed headers included';

CREATE FUNCTION pay.adyen_hmac_signature(item jsonb, hmac_key_hex text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_adyen_hmac_signature'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.adyen_hmac_signature(jsonb, text) IS
    'base64 HMAC-SHA256 of an Adyen NotificationRequestItem (pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success) under the hex HMAC key';

CREATE FUNCTION pay.adyen_hmac_valid(item jsonb, hmac_key_hex text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_adyen_hmac_valid'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay.adyen_hmac_valid(jsonb, text) IS
    'true when item->''additionalData''->>''hmacSignature'' is the Adyen HMAC of item under the hex HMAC key';

GRANT EXECUTE ON FUNCTION
    pay.hmac_sha256_hex(text, text),
    pay.sign_params(jsonb, text),
    pay.sign_params_sha256(jsonb, text),
    pay.stripe_signature_header(text, text, timestamptz),
    pay.stripe_signature_valid(text, text, text, integer, timestamptz),
    pay.adyen_hmac_signature(jsonb, text),
    pay.adyen_hmac_valid(jsonb, text)
    TO pay_app, pay_admin;
-- RSA signatures (SHA256withRSA, PKCS#1 v1.5) and the schemes built on them:
-- Alipay RSA2, WeChat Pay API v3 (with its AES-256-GCM callback resources) and
-- PayPal webhooks.  Pure functions (no table access); keys in PEM, bare base64
-- or certificate form are parsed once per backend and cached (src/crypto/pkey.c).

CREATE FUNCTION pay.rsa_sha256_sign(message text, private_key_pem text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_rsa_sha256_sign'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.rsa_sha256_sign(text, text) IS
  'base64 SHA256withRSA (PKCS#1 v1.5) signature of the message; the key is a PKCS#8 or PKCS#1 PEM private key (RSA, 2048 to 8192 bits)';

CREATE FUNCTION pay.rsa_sha256_valid(message text, signature text, public_key_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_rsa_sha256_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.rsa_sha256_valid(text, text, text) IS
  'true if signature is a base64 SHA256withRSA signature of message under the key (SPKI or PKCS#1 PEM, bare base64 body, or X.509 certificate PEM); false otherwise; 22023 for a key that is not one';

CREATE FUNCTION pay.alipay_sign(params jsonb, private_key_pem text, exclude text[] DEFAULT '{sign}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_alipay_sign'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.alipay_sign(jsonb, text, text[]) IS
  'Alipay RSA2 signature (base64 SHA256withRSA) of canonical_query(params, exclude); requests we send sign sign_type too, so only sign is excluded by default';

CREATE FUNCTION pay.alipay_signature_valid(params jsonb, public_key_pem text,
                                           exclude text[] DEFAULT '{sign,sign_type}')
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_alipay_signature_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.alipay_signature_valid(jsonb, text, text[]) IS
  'true if params->>''sign'' is a valid Alipay RSA2 signature of canonical_query(params, exclude); asynchronous notifies exclude sign and sign_type (the default); false when sign is missing';

CREATE FUNCTION pay.alipay_response_valid(response_body text, public_key_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_alipay_response_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.alipay_response_valid(text, text) IS
  'true if a synchronous Alipay answer {"..._response":{...},"sign":"..."} carries a valid RSA2 signature over the raw text of its *_response member; false for a bad signature or a malformed answer';

CREATE FUNCTION pay.wechatpay_authorization(method text, url text, body text, mchid text,
                                            serial_no text, private_key_pem text, ts bigint,
                                            nonce text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_wechatpay_authorization'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_authorization(text, text, text, text, text, text, bigint, text) IS
  'WeChat Pay API v3 Authorization header (WECHATPAY2-SHA256-RSA2048) of a request, signed over METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n; url is the path and query';

CREATE FUNCTION pay.wechatpay_signature_valid(ts text, nonce text, body text, signature text,
                                              public_key_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_wechatpay_signature_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_signature_valid(text, text, text, text, text) IS
  'true if the Wechatpay-Signature of a WeChat Pay callback or answer verifies over TIMESTAMP\nNONCE\nBODY\n with the platform certificate or public key';

CREATE FUNCTION pay.wechatpay_decrypt(apiv3_key text, nonce text, associated_data text,
                                      ciphertext text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pay_wechatpay_decrypt'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_decrypt(text, text, text, text) IS
  'plaintext of a WeChat Pay AEAD_AES_256_GCM resource (32-byte APIv3 key, 12-byte nonce, base64 ciphertext with its tag); 22023 for malformed arguments, PY010 when the tag does not verify';

CREATE FUNCTION pay.wechatpay_parse_authorization(header text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_wechatpay_parse_authorization'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.wechatpay_parse_authorization(text) IS
  'the fields of a WeChat Pay Authorization header as {"mchid","nonce_str","signature","timestamp","serial_no"} strings; NULL if the header is malformed or lacks a field';

CREATE FUNCTION pay.paypal_signature_valid(headers jsonb, body text, webhook_id text,
                                           certificate_pem text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_paypal_signature_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.paypal_signature_valid(jsonb, text, text, text) IS
  'true if a PayPal webhook verifies: SHA256withRSA in PAYPAL-TRANSMISSION-SIG over transmission_id|transmission_time|webhook_id|crc32(body); header names case-insensitive; PAYPAL-AUTH-ALGO, when present, must be SHA256withRSA';

CREATE FUNCTION pay._rsa_key_cache_count()
    RETURNS integer
    AS 'MODULE_PATHNAME', 'pay_rsa_key_cache_count'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pay._rsa_key_cache_count() IS
  'internal: number of RSA keys parsed and cached by this backend (at most 32)';

CREATE FUNCTION pay._crc32(data bytea)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_crc32'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._crc32(bytea) IS
  'internal: CRC-32 of the bytes as zlib computes it (the checksum in PayPal''s signed message)';

GRANT EXECUTE ON FUNCTION
    pay.rsa_sha256_sign(text, text),
    pay.rsa_sha256_valid(text, text, text),
    pay.alipay_sign(jsonb, text, text[]),
    pay.alipay_signature_valid(jsonb, text, text[]),
    pay.alipay_response_valid(text, text),
    pay.wechatpay_authorization(text, text, text, text, text, text, bigint, text),
    pay.wechatpay_signature_valid(text, text, text, text, text),
    pay.wechatpay_decrypt(text, text, text, text),
    pay.wechatpay_parse_authorization(text),
    pay.paypal_signature_valid(jsonb, text, text, text)
  TO pay_app, pay_admin;
-- The outbox: every request pay sends to the outside world (PSP calls and
-- merchant notifications), written in the same transaction as the change
-- that caused it and delivered by the dispatcher (src/dispatcher*.c).
--
-- A row is pending until the dispatcher claims it (in_flight, in a short
-- transaction committed before any HTTP), then done, pending again for the
-- next attempt, or dead.  Requests are built and signed at send time by
-- pay._outbox_request: secrets are never stored here.  destination names
-- whom the request is for, in the form of the secret store's owners:
-- 'gateway:<name>' or 'merchant:<code>'; circuit breakers are per destination.

-- The rules for its rows (kind, destination and operation forms, params an
-- object, key length, state and the timestamps that go with it) are a C
-- trigger, not CHECK constraints, which PostgreSQL re-plans on every
-- statement (src/outbox_check.c).
CREATE TABLE pay.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    destination      text NOT NULL,
    operation        text NOT NULL,
    order_id         bigint,
    params           jsonb NOT NULL DEFAULT '{}',
    idempotency_key  text NOT NULL UNIQUE,
    state            text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    attempts_max     integer NOT NULL,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- the W3C trace id of the request that queued the row, else its order's;
    -- sent, with a new span id, as the traceparent of every attempt
    trace_id         text
);
CREATE FUNCTION pay._outbox_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_outbox_check' LANGUAGE C;
CREATE TRIGGER outbox_check BEFORE INSERT OR UPDATE ON pay.outbox
    FOR EACH ROW EXECUTE FUNCTION pay._outbox_check();
ALTER TABLE pay.outbox ENABLE ALWAYS TRIGGER outbox_check;
-- Partial indexes: a row is in each only while it is in that state.
CREATE INDEX outbox_due ON pay.outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_in_flight ON pay.outbox (claimed_at) WHERE state = 'in_flight';
CREATE INDEX outbox_dead ON pay.outbox (finished_at) WHERE state = 'dead';
CREATE INDEX outbox_order ON pay.outbox (order_id) WHERE order_id IS NOT NULL;
COMMENT ON TABLE pay.outbox IS
  'requests to send (PSP calls, merchant notifications): built and signed at send time, delivered by the dispatcher with retries';
COMMENT ON COLUMN pay.outbox.destination IS '''gateway:<name>'' or ''merchant:<code>'': whom the request goes to (circuit breakers are per destination)';
COMMENT ON COLUMN pay.outbox.idempotency_key IS 'sent with every attempt (Idempotency-Key header, out_trade_no/out_refund_no, event_id): a re-send has no second effect';
COMMENT ON COLUMN pay.outbox.claimed_at IS 'when the dispatcher claimed the row; a claim older than the lease (pay.dispatcher_lease) is taken back';

CREATE TABLE pay.outbox_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id    bigint NOT NULL,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    latency_ms   double precision,
    http_status  integer,
    outcome      text NOT NULL CHECK (outcome IN ('done', 'retry', 'dead', 'interrupted')),
    error        text
);
CREATE INDEX outbox_attempts_outbox ON pay.outbox_attempts (outbox_id);
COMMENT ON TABLE pay.outbox_attempts IS
  'every delivery attempt: when, HTTP status, latency, error and what followed; purged with pay.purge_outbox';

-- The bound on the outbox: undelivered rows (pending or in flight) counted in
-- slots, so that concurrent enqueuers do not all update one row.  Statement
-- triggers keep it exact whoever writes pay.outbox.
-- Slots 0 to 64, made here once; nothing inserts or deletes rows later
-- (no CHECK on slot: PostgreSQL 15 re-plans a table's CHECKs in every
-- statement that writes it, and every queued row updates this table).
CREATE TABLE pay.outbox_backlog (
    slot         smallint PRIMARY KEY,
    undelivered  bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
INSERT INTO pay.outbox_backlog (slot) SELECT generate_series(0, 64);
COMMENT ON TABLE pay.outbox_backlog IS
  'undelivered outbox rows, split in slots (slot 64 is the dispatcher''s); the sum is bounded by pay.outbox_pending_max';

-- Circuit breakers, written by the dispatcher when a destination's state changes.
CREATE TABLE pay.circuit_breakers (
    destination          text PRIMARY KEY,
    state                text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    opened_at            timestamptz,
    open_until           timestamptz,
    last_failure_at      timestamptz,
    last_error           text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.circuit_breakers IS
  'per destination: consecutive failures; open after pay.breaker_failures of them for pay.breaker_cooldown, then one probe (half_open)';
-- Routing caches which gateways' circuits are open in every backend
-- (src/order_route.c): a change of a gateway's state or cool-down empties
-- those caches.  Row triggers with WHEN, so that the failures counted for
-- merchants' endpoints (one write per failed attempt) do not.
CREATE TRIGGER circuit_breakers_route_cache_insert AFTER INSERT ON pay.circuit_breakers
    FOR EACH ROW WHEN (NEW.destination LIKE 'gateway:%' AND NEW.state = 'open')
    EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER circuit_breakers_route_cache_update AFTER UPDATE ON pay.circuit_breakers
    FOR EACH ROW WHEN (NEW.destination LIKE 'gateway:%'
                       AND (OLD.state, OLD.open_until, OLD.destination) IS DISTINCT FROM (NEW.state, NEW.open_until, NEW.destination))
    EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER circuit_breakers_route_cache_delete AFTER DELETE ON pay.circuit_breakers
    FOR EACH ROW WHEN (OLD.destination LIKE 'gateway:%' AND OLD.state = 'open')
    EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER circuit_breakers_route_cache_truncate AFTER TRUNCATE ON pay.circuit_breakers
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_insert;
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_update;
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_delete;
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_truncate;

-- C glue (src/outbox_wake.c, src/outbox_schedule.c, src/dispatcher_shmem.c, src/form_encode_sql.c).
CREATE FUNCTION pay._outbox_wake() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_outbox_wake' LANGUAGE C;
CREATE FUNCTION pay._outbox_attempts_max(kind text) RETURNS integer
    AS 'MODULE_PATHNAME', 'pay_outbox_attempts_max' LANGUAGE C STABLE STRICT;
CREATE FUNCTION pay.form_urlencode(params jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_form_urlencode' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.form_urlencode(jsonb) IS
  'application/x-www-form-urlencoded body of a JSON object: keys in byte order, values as text (nested values as compact JSON), NULLs left out';

-- Outbound destinations (src/destination_check.c): a notify_url or base_url
-- on a loopback, link-local or private address, or naming localhost, is
-- refused when set (and the dispatcher refuses to connect to such an address
-- whatever name resolves to it) unless pay.allow_private_destinations is on.
CREATE FUNCTION pay._check_destination(field text, url text) RETURNS void
    AS 'MODULE_PATHNAME', 'pay_check_destination' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION pay._check_destination(text, text) IS
  'raises 22023 naming field when url may not be sent to: malformed, a numeric host that is not a dotted quad, or (unless pay.allow_private_destinations) a loopback, link-local, private or unspecified address or localhost';

CREATE FUNCTION pay.dispatcher_status(
    OUT running boolean, OUT preloaded boolean, OUT database text, OUT pid integer,
    OUT started_at timestamptz, OUT in_flight integer, OUT claimed bigint, OUT delivered bigint,
    OUT retried bigint, OUT dead bigint, OUT wakeups bigint, OUT last_error text, OUT detail text)
    RETURNS record
    AS 'MODULE_PATHNAME', 'pay_dispatcher_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pay.dispatcher_status() IS
  'whether the dispatcher delivers this database''s outbox (running), and its counters since it started; detail says why not';

CREATE VIEW pay.dispatcher AS SELECT * FROM pay.dispatcher_status();
COMMENT ON VIEW pay.dispatcher IS 'one row: is delivery running for this database, and its counters';

-- Keep the backlog slots exact and refuse to grow past pay.outbox_pending_max
-- (src/outbox_count.c).
CREATE FUNCTION pay._outbox_count() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_outbox_count' LANGUAGE C;

CREATE TRIGGER outbox_count_insert AFTER INSERT ON pay.outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_count();
CREATE TRIGGER outbox_count_update AFTER UPDATE ON pay.outbox
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_count();
CREATE TRIGGER outbox_count_delete AFTER DELETE ON pay.outbox
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_count();
-- Wake the dispatcher when the transaction that queued something commits.
CREATE TRIGGER outbox_wake AFTER INSERT OR UPDATE ON pay.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_wake();
CREATE FUNCTION pay._outbox_no_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'pay.outbox cannot be truncated' USING ERRCODE = 'restrict_violation',
    HINT = 'Use pay.purge_outbox, which keeps the backlog count exact.';
END $$;
CREATE TRIGGER outbox_no_truncate BEFORE TRUNCATE ON pay.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_no_truncate();

-- Queue a request, or return the row already queued under the same key
-- (with other parameters: PY002 if p_strict, else the first row stands).
-- (No SET clause: only the SECURITY DEFINER enqueue functions call it.)
CREATE FUNCTION pay._enqueue(p_kind text, p_destination text, p_operation text, p_order_id bigint,
                             p_params jsonb, p_key text, p_strict boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_params jsonb;
BEGIN
  INSERT INTO pay.outbox (kind, destination, operation, order_id, params, idempotency_key, attempts_max, trace_id)
    VALUES (p_kind, p_destination, p_operation, p_order_id, p_params, p_key, pay._outbox_attempts_max(p_kind),
            coalesce(pay._trace_id(), (SELECT o.trace_id FROM pay.orders o WHERE o.id = p_order_id)))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT id, params INTO v_id, v_params FROM pay.outbox WHERE idempotency_key = p_key;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'outbox key "%" is in use by a transaction this snapshot cannot see', p_key
        USING ERRCODE = 'serialization_failure', HINT = 'Retry the call.';
    END IF;
    IF p_strict AND v_params <> p_params THEN
      RAISE EXCEPTION 'a request with key "%" was already queued with different parameters', p_key
        USING ERRCODE = 'PY002', DETAIL = format('First parameters: %s', v_params);
    END IF;
  END IF;
  RETURN v_id;
END $$;

CREATE FUNCTION pay.enqueue_merchant_notification(order_id bigint, event text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  m pay.merchants;
  v_event_id text;
BEGIN
  IF event IS NULL OR event !~ '^[a-z][a-z0-9_.:-]{0,63}$' THEN
    RAISE EXCEPTION 'event must be 1 to 64 lower-case letters, digits or _.:- starting with a letter, not "%"',
      coalesce(event, 'null') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM pay.orders WHERE id = enqueue_merchant_notification.order_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(enqueue_merchant_notification.order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO STRICT m FROM pay.merchants WHERE id = o.merchant_id;
  IF m.notify_url IS NULL THEN
    RETURN NULL;                -- the merchant takes no notifications
  END IF;
  v_event_id := 'evt_' || o.id || '_' || event;
  RETURN pay._enqueue('merchant_notification', 'merchant:' || m.code, event, o.id,
                      jsonb_build_object('id', o.id::text, 'merchant_order_no', o.merchant_order_no,
                                         'amount', o.amount::text, 'currency', o.currency::text,
                                         'status', o.status, 'event_id', v_event_id),
                      v_event_id, false);
END $$;
COMMENT ON FUNCTION pay.enqueue_merchant_notification(bigint, text) IS
  'queues the signed notification of an order event to its merchant''s notify_url, once per order and event (again: the first row''s id); NULL when the merchant has no notify_url';

-- params: refund_id (a refund, the id pay.refund returned), psp_txn_id (the
-- PSP's id when the order does not hold it), extra (an object merged into
-- the request body as it is, e.g. Stripe's payment_method).
CREATE FUNCTION pay.enqueue_psp_request(order_id bigint, operation text, params jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  v_key text;
  v_refund bigint;
BEGIN
  IF operation IS NULL OR operation NOT IN ('create_payment', 'query', 'refund', 'close') THEN
    RAISE EXCEPTION 'operation must be one of create_payment, query, refund, close; not "%"', coalesce(operation, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF octet_length(params::text) > 8192 THEN
    RAISE EXCEPTION 'params is larger than 8192 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM pay.orders WHERE id = enqueue_psp_request.order_id;
  -- to a caller bound to other merchants (53_merchant_binding.sql) it does not exist
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(enqueue_psp_request.order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF o.gateway IS NULL THEN
    RAISE EXCEPTION 'order % has no gateway to send % to', o.id, operation USING ERRCODE = 'invalid_parameter_value';
  END IF;
  CASE operation
    WHEN 'refund' THEN
      IF params->>'refund_id' IS NULL OR params->>'refund_id' !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'params: a refund needs "refund_id", the id returned by pay.refund'
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      v_refund := (params->>'refund_id')::bigint;
      PERFORM 1 FROM pay.refunds r WHERE r.id = v_refund AND r.order_id = o.id;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'params: refund % is not a refund of order %', v_refund, o.id
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      v_key := 'psp_' || o.id || '_refund_' || v_refund;
    WHEN 'query' THEN
      -- a query changes nothing: every one is sent
      v_key := 'psp_' || o.id || '_query_' || nextval('pay.outbox_id_seq');
    ELSE
      v_key := 'psp_' || o.id || '_' || operation;
  END CASE;
  RETURN pay._enqueue('psp_request', 'gateway:' || o.gateway, operation, o.id, params, v_key, true);
END $$;
COMMENT ON FUNCTION pay.enqueue_psp_request(bigint, text, jsonb) IS
  'queues a request (create_payment, query, refund with params.refund_id, close) to the order''s gateway; params.extra goes into the request body; the same request twice is queued once';

-- Every transition of an order to paid, refunded or failed notifies its
-- merchant (src/order_notify.c; it calls enqueue_merchant_notification).
CREATE FUNCTION pay._order_notify() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_order_notify' LANGUAGE C;
CREATE TRIGGER orders_notify AFTER UPDATE OF status ON pay.orders
    FOR EACH ROW EXECUTE FUNCTION pay._order_notify();
ALTER TABLE pay.orders ENABLE ALWAYS TRIGGER orders_notify;

-- Dead letters and re-driving them.
CREATE VIEW pay.outbox_dead_letters AS
  SELECT id, kind, destination, operation, order_id, idempotency_key, attempts,
         last_status, last_error, last_attempt_at, created_at, finished_at
    FROM pay.outbox
   WHERE state = 'dead';
COMMENT ON VIEW pay.outbox_dead_letters IS
  'requests that failed permanently or ran out of attempts; pay.redrive(id) queues one again';

-- Re-routing (routing_rules.reroute): a create_payment request that failed
-- for good at one gateway — refused (4xx), dead after its retries, or held
-- by an open circuit before it was ever sent — moves its still-pending
-- order, once, to the first other available gateway of the rules that
-- match it (priority, then id), in the transaction that records the
-- failure (the dispatcher's).  The first request is dead and says where the
-- order went; the new one has its own key, so the move happens once.
-- Returns the new outbox row, or NULL when the order does not move.
CREATE FUNCTION pay._reroute(p_outbox_id bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
  o pay.orders;
  v_rule bigint;
  v_gateway text;
  v_key text;
BEGIN
  SELECT * INTO r FROM pay.outbox WHERE id = p_outbox_id FOR UPDATE;
  IF NOT FOUND OR r.kind <> 'psp_request' OR r.operation <> 'create_payment'
     OR r.state NOT IN ('dead', 'pending') OR r.order_id IS NULL THEN
    RETURN NULL;
  END IF;
  v_key := 'psp_' || r.order_id || '_create_payment_rerouted';
  SELECT * INTO o FROM pay.orders WHERE id = r.order_id FOR UPDATE;
  IF NOT FOUND OR o.status <> 'pending' OR r.destination <> 'gateway:' || o.gateway
     OR NOT EXISTS (SELECT 1 FROM pay.routing_rules x WHERE x.id = o.routing_rule_id AND x.reroute)
     OR EXISTS (SELECT 1 FROM pay.outbox x WHERE x.idempotency_key = v_key) THEN
    RETURN NULL;
  END IF;
  SELECT x.id, g.name INTO v_rule, v_gateway
    FROM pay.routing_rules x JOIN pay.gateways g ON g.id = x.gateway_id
   WHERE g.enabled AND g.name <> o.gateway
     AND (x.merchant_id IS NULL OR x.merchant_id = o.merchant_id)
     AND (x.currency IS NULL OR x.currency = o.currency)
     AND o.amount >= coalesce(x.min_amount, 0) AND o.amount <= coalesce(x.max_amount, o.amount)
     AND pay.gateway_available(g.name)
   ORDER BY x.priority, x.id
   LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  UPDATE pay.orders SET gateway = v_gateway, routing_rule_id = v_rule WHERE id = o.id;
  UPDATE pay.outbox
     SET state = 'dead', finished_at = coalesce(finished_at, now()),
         last_error = left(coalesce(last_error || '; ', '') || 're-routed to gateway:' || v_gateway, 2000)
   WHERE id = r.id;
  RETURN pay._enqueue('psp_request', 'gateway:' || v_gateway, 'create_payment', o.id, r.params, v_key, false);
END $$;

-- The dispatcher's part for open circuits: pending create_payment requests
-- never sent to those destinations, of orders whose rule re-routes.
CREATE FUNCTION pay._reroute_blocked(p_destinations text[]) RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT count(pay._reroute(s.id))::integer
    FROM (SELECT x.id FROM pay.outbox x
            JOIN pay.orders o ON o.id = x.order_id AND o.status = 'pending'
            JOIN pay.routing_rules rr ON rr.id = o.routing_rule_id AND rr.reroute
           WHERE x.state = 'pending' AND x.attempts = 0 AND x.kind = 'psp_request'
             AND x.operation = 'create_payment' AND x.destination = ANY (p_destinations)
           ORDER BY x.next_attempt_at LIMIT 100
           FOR UPDATE OF x SKIP LOCKED) s
$$;

-- A PSP request to a gateway its order has since left (re-routed): it must
-- not be sent again.
CREATE FUNCTION pay._rerouted_away(r pay.outbox) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT r.kind = 'psp_request' AND EXISTS (
    SELECT 1 FROM pay.orders o WHERE o.id = r.order_id AND r.destination <> 'gateway:' || o.gateway)
$$;

CREATE FUNCTION pay.redrive(outbox_id bigint) RETURNS pay.outbox
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
BEGIN
  SELECT * INTO r FROM pay.outbox WHERE id = outbox_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'outbox_id: outbox row % does not exist', coalesce(outbox_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF r.state NOT IN ('dead', 'pending') THEN
    RAISE EXCEPTION 'outbox row % is %; only a dead (or pending) row can be re-driven', r.id, r.state
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF pay._rerouted_away(r) THEN
    RAISE EXCEPTION 'outbox row % went to %, and its order was re-routed to another gateway', r.id, r.destination
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- A fresh schedule from now; the attempts so far stay in pay.outbox_attempts.
  UPDATE pay.outbox
     SET state = 'pending', attempts = 0, attempts_max = pay._outbox_attempts_max(kind),
         next_attempt_at = now(), finished_at = NULL
   WHERE id = r.id
  RETURNING * INTO r;
  RETURN r;
END $$;
COMMENT ON FUNCTION pay.redrive(bigint) IS
  'queues a dead outbox row again with a fresh schedule (a pending one is made due now); returns the row';

CREATE FUNCTION pay.redrive_dead(destination text DEFAULT NULL, max_rows integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE pay.outbox o
     SET state = 'pending', attempts = 0, attempts_max = pay._outbox_attempts_max(o.kind),
         next_attempt_at = now(), finished_at = NULL
   WHERE o.id IN (SELECT d.id FROM pay.outbox d
                   WHERE d.state = 'dead' AND (redrive_dead.destination IS NULL OR d.destination = redrive_dead.destination)
                     AND NOT pay._rerouted_away(d)
                   ORDER BY d.finished_at LIMIT max_rows FOR UPDATE);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.redrive_dead(text, integer) IS
  're-drives up to max_rows dead rows (of one destination, or all); returns how many';

CREATE FUNCTION pay.purge_outbox(older_than interval DEFAULT '30 days', max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF older_than IS NULL OR older_than < interval '0' OR max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'older_than must not be negative and max_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  WITH gone AS (
    DELETE FROM pay.outbox o
     WHERE o.id IN (SELECT id FROM pay.outbox
                     WHERE state = 'done' AND finished_at < now() - older_than
                     ORDER BY id LIMIT max_rows)
    RETURNING o.id)
  DELETE FROM pay.outbox_attempts a USING gone WHERE a.outbox_id = gone.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_outbox(interval, integer) IS
  'deletes delivered outbox rows finished more than older_than ago, with their attempts (at most max_rows rows); dead rows stay';

-- Circuit breakers as routing sees them.
CREATE VIEW pay.circuits AS
  SELECT destination,
         CASE WHEN state = 'open' AND open_until <= now() THEN 'half_open' ELSE state END AS state,
         consecutive_failures, opened_at, open_until, last_failure_at, last_error, updated_at
    FROM pay.circuit_breakers;
COMMENT ON VIEW pay.circuits IS
  'circuit breaker per destination; an open circuit past its cool-down lets one probe through (half_open)';

CREATE FUNCTION pay.gateway_available(name text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN NOT EXISTS (SELECT 1 FROM pay.circuit_breakers c
                    WHERE c.destination = 'gateway:' || gateway_available.name
                      AND c.state = 'open' AND c.open_until > now());
COMMENT ON FUNCTION pay.gateway_available(text) IS
  'false while the gateway''s circuit is open (before its cool-down ends): routing should pick another gateway';

-- ---------------------------------------------------------------------------
-- RequestBuilder: the HTTP request of an outbox row, built and signed at send
-- time with credentials from the secret store.  Each returns the method, URL,
-- headers ("Name: value") and body.

CREATE TYPE pay.http_request AS (method text, url text, headers text[], body text);
COMMENT ON TYPE pay.http_request IS 'an HTTP request to send: method, URL, headers as "Name: value", body';

-- A credential for the request builders (they run as the extension owner).
CREATE FUNCTION pay._credential(p_owner text, p_name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  v := pay.reveal_secret(p_owner, p_name);
  IF v IS NULL THEN
    RAISE EXCEPTION 'secret "%" of "%" is not set', p_name, p_owner USING ERRCODE = 'undefined_object',
      HINT = 'Store it with pay.set_secret.';
  END IF;
  RETURN v;
END $$;

-- A required gateway option.
CREATE FUNCTION pay._gateway_option(g pay.gateways, p_name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF coalesce(g.options->>p_name, '') = '' THEN
    RAISE EXCEPTION 'gateway "%" has no option "%"', g.name, p_name USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Set it in pay.gateways.options.';
  END IF;
  RETURN g.options->>p_name;
END $$;

-- A merchant notification (API.md, "Callbacks"): form fields signed with
-- pay.sign_params under the merchant's api_secret (read here unless the
-- caller has it already), new timestamp and nonce for every attempt.
CREATE FUNCTION pay._build_merchant_notification(r pay.outbox, p_secret text DEFAULT NULL)
RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m pay.merchants;
  v_fields jsonb;
BEGIN
  SELECT * INTO m FROM pay.merchants WHERE code = substr(r.destination, length('merchant:') + 1);
  IF NOT FOUND OR m.notify_url IS NULL THEN
    RAISE EXCEPTION 'merchant of % has no notify_url', r.destination USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_fields := r.params || jsonb_build_object(
      'timestamp', floor(extract(epoch FROM clock_timestamp()))::bigint::text,
      'nonce', replace(gen_random_uuid()::text, '-', ''));
  v_fields := v_fields || jsonb_build_object(
      'sign', pay.sign_params(v_fields, coalesce(p_secret, pay._credential(r.destination, 'api_secret'))));
  RETURN ROW('POST', m.notify_url,
             ARRAY['Content-Type: application/x-www-form-urlencoded',
                   'Idempotency-Key: ' || r.idempotency_key],
             pay.form_urlencode(v_fields))::pay.http_request;
END $$;

-- The order of a PSP request, and the refund it names.
CREATE FUNCTION pay._request_order(r pay.outbox) RETURNS pay.orders
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
BEGIN
  SELECT * INTO o FROM pay.orders WHERE id = r.order_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'order % of outbox row % does not exist', r.order_id, r.id USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN o;
END $$;

CREATE FUNCTION pay._request_refund(r pay.outbox) RETURNS pay.refunds
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  f pay.refunds;
BEGIN
  SELECT * INTO f FROM pay.refunds WHERE id = (r.params->>'refund_id')::bigint AND order_id = r.order_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'refund % of outbox row % does not exist', r.params->>'refund_id', r.id
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN f;
END $$;

-- Stripe: form bodies, Bearer secret key, Idempotency-Key on every POST.
CREATE FUNCTION pay._build_stripe(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders := pay._request_order(r);
  v_base text := rtrim(coalesce(g.base_url, 'https://api.stripe.com'), '/');
  v_method text := 'POST';
  v_path text;
  v_form jsonb;
  v_extra jsonb := coalesce(r.params->'extra', '{}');
  v_txn text := coalesce(r.params->>'psp_txn_id', o.psp_txn_id);
BEGIN
  CASE r.operation
    WHEN 'create_payment' THEN
      v_path := '/v1/payment_intents';
      v_form := jsonb_build_object('amount', o.amount::text, 'currency', lower(o.currency),
                                   'metadata[order_id]', o.id::text) || v_extra;
    WHEN 'query' THEN
      v_method := 'GET';
      IF v_txn IS NOT NULL THEN
        v_path := '/v1/payment_intents/' || v_txn;
      ELSE
        v_path := '/v1/payment_intents/search?query=' ||
                  pay.form_urlencode(jsonb_build_object('q', format('metadata[''order_id'']:''%s''', o.id)));
        v_path := replace(v_path, 'query=q=', 'query=');
      END IF;
    WHEN 'refund' THEN
      IF v_txn IS NULL THEN
        RAISE EXCEPTION 'order % has no Stripe payment intent to refund', o.id USING ERRCODE = 'invalid_parameter_value';
      END IF;
      v_path := '/v1/refunds';
      v_form := jsonb_build_object('payment_intent', v_txn,
                                   'amount', (pay._request_refund(r)).amount::text,
                                   'metadata[refund_id]', r.params->>'refund_id') || v_extra;
    WHEN 'close' THEN
      IF v_txn IS NULL THEN
        RAISE EXCEPTION 'order % has no Stripe payment intent to cancel', o.id USING ERRCODE = 'invalid_parameter_value';
      END IF;
      v_path := '/v1/payment_intents/' || v_txn || '/cancel';
      v_form := v_extra;
  END CASE;
  RETURN ROW(v_method, v_base || v_path,
             ARRAY['Authorization: Bearer ' || pay._credential('gateway:' || g.name, 'api_key'),
                   'Idempotency-Key: ' || r.idempotency_key]
             || CASE WHEN v_method = 'POST' THEN ARRAY['Content-Type: application/x-www-form-urlencoded'] ELSE '{}' END,
             CASE WHEN v_method = 'POST' THEN pay.form_urlencode(coalesce(v_form, '{}')) END)::pay.http_request;
END $$;

-- Alipay (openapi gateway): common parameters, biz_content as JSON, RSA2
-- sign; the request of one API method (also the statement fetch's).
CREATE FUNCTION pay._alipay_request(g pay.gateways, p_method text, p_biz jsonb, p_idempotency_key text,
                                    p_extra jsonb DEFAULT '{}') RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_params jsonb;
BEGIN
  v_params := jsonb_build_object(
      'app_id', pay._gateway_option(g, 'app_id'), 'method', p_method, 'format', 'JSON',
      'charset', 'utf-8', 'sign_type', 'RSA2', 'version', '1.0',
      'timestamp', to_char(clock_timestamp() AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS'),
      'biz_content', p_biz::text) || p_extra;
  v_params := v_params || jsonb_build_object(
      'sign', pay.alipay_sign(v_params, pay._credential('gateway:' || g.name, 'private_key')));
  RETURN ROW('POST', CASE WHEN g.base_url IS NULL THEN 'https://openapi.alipay.com/gateway.do'
                          WHEN g.base_url ~ '\.do$' THEN g.base_url
                          ELSE rtrim(g.base_url, '/') || '/gateway.do' END,
             ARRAY['Content-Type: application/x-www-form-urlencoded;charset=utf-8',
                   'Idempotency-Key: ' || p_idempotency_key],
             pay.form_urlencode(v_params))::pay.http_request;
END $$;

-- Idempotency: out_trade_no is the order id, out_request_no the refund id.
CREATE FUNCTION pay._build_alipay(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders := pay._request_order(r);
  v_biz jsonb := jsonb_build_object('out_trade_no', o.id::text);
  v_method text;
  f pay.refunds;
BEGIN
  CASE r.operation
    WHEN 'create_payment' THEN
      v_method := 'alipay.trade.precreate';
      v_biz := v_biz || jsonb_build_object('total_amount', pay.format_amount(o.amount, o.currency),
                                           'subject', 'order ' || o.id);
    WHEN 'query' THEN
      v_method := 'alipay.trade.query';
    WHEN 'refund' THEN
      v_method := 'alipay.trade.refund';
      f := pay._request_refund(r);
      v_biz := v_biz || jsonb_build_object('refund_amount', pay.format_amount(f.amount, o.currency),
                                           'out_request_no', f.id::text);
    WHEN 'close' THEN
      v_method := 'alipay.trade.close';
  END CASE;
  v_biz := v_biz || coalesce(r.params->'extra', '{}');
  RETURN pay._alipay_request(g, v_method, v_biz, r.idempotency_key,
    CASE WHEN r.operation = 'create_payment' AND g.options ? 'notify_url'
         THEN jsonb_build_object('notify_url', g.options->>'notify_url') ELSE '{}' END);
END $$;

-- WeChat Pay API v3: JSON bodies, WECHATPAY2-SHA256-RSA2048 Authorization.
-- Idempotency: out_trade_no is the order id, out_refund_no the refund id.
-- WeChat Pay wants out_trade_no of 6 to 32 characters: order ids below
-- 100000 are sent with leading zeros (callbacks read "000042" back as 42).
-- lpad alone would cut longer ids.
CREATE FUNCTION pay._wechatpay_trade_no(p_order_id bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
RETURN CASE WHEN length(p_order_id::text) < 6 THEN lpad(p_order_id::text, 6, '0') ELSE p_order_id::text END;

CREATE FUNCTION pay._build_wechatpay(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders := pay._request_order(r);
  v_mchid text := pay._gateway_option(g, 'mchid');
  v_method text := 'POST';
  v_path text;
  v_body text := '';
  v_nonce text := upper(replace(gen_random_uuid()::text, '-', ''));
  v_ts bigint := floor(extract(epoch FROM clock_timestamp()))::bigint;
  f pay.refunds;
BEGIN
  CASE r.operation
    WHEN 'create_payment' THEN
      v_path := '/v3/pay/transactions/native';
      v_body := (jsonb_build_object('appid', pay._gateway_option(g, 'appid'), 'mchid', v_mchid,
                                    'description', 'order ' || o.id, 'out_trade_no', pay._wechatpay_trade_no(o.id),
                                    'notify_url', pay._gateway_option(g, 'notify_url'),
                                    'amount', jsonb_build_object('total', o.amount, 'currency', o.currency::text))
                 || coalesce(r.params->'extra', '{}'))::text;
    WHEN 'query' THEN
      v_method := 'GET';
      v_path := '/v3/pay/transactions/out-trade-no/' || pay._wechatpay_trade_no(o.id) || '?mchid=' || v_mchid;
    WHEN 'refund' THEN
      f := pay._request_refund(r);
      v_path := '/v3/refund/domestic/refunds';
      v_body := (jsonb_build_object('out_trade_no', pay._wechatpay_trade_no(o.id), 'out_refund_no', f.id::text,
                                    'amount', jsonb_build_object('refund', f.amount, 'total', o.amount,
                                                                 'currency', o.currency::text))
                 || coalesce(r.params->'extra', '{}'))::text;
    WHEN 'close' THEN
      v_path := '/v3/pay/transactions/out-trade-no/' || pay._wechatpay_trade_no(o.id) || '/close';
      v_body := jsonb_build_object('mchid', v_mchid)::text;
  END CASE;
  RETURN ROW(v_method, rtrim(coalesce(g.base_url, 'https://api.mch.weixin.qq.com'), '/') || v_path,
             ARRAY['Authorization: ' || pay.wechatpay_authorization(
                       v_method, v_path, v_body, v_mchid, pay._gateway_option(g, 'serial_no'),
                       pay._credential('gateway:' || g.name, 'private_key'), v_ts, v_nonce),
                   'Accept: application/json',
                   'Idempotency-Key: ' || r.idempotency_key]
             || CASE WHEN v_method = 'POST' THEN ARRAY['Content-Type: application/json'] ELSE '{}' END,
             CASE WHEN v_method = 'POST' THEN v_body END)::pay.http_request;
END $$;

-- A generic PSP: POST <base_url>/<operation> with a JSON body and the key in
-- the Idempotency-Key header; Bearer api_key when options.auth = 'bearer'.
CREATE FUNCTION pay._build_generic(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders := pay._request_order(r);
  v_headers text[] := ARRAY['Content-Type: application/json', 'Idempotency-Key: ' || r.idempotency_key];
BEGIN
  IF g.base_url IS NULL THEN
    RAISE EXCEPTION 'gateway "%" has no base_url', g.name USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF g.options->>'auth' = 'bearer' THEN
    v_headers := v_headers || ('Authorization: Bearer ' || pay._credential('gateway:' || g.name, 'api_key'));
  END IF;
  RETURN ROW('POST', rtrim(g.base_url, '/') || '/' || r.operation, v_headers,
             (jsonb_build_object('order_id', o.id::text, 'amount', o.amount, 'currency', o.currency::text,
                                 'psp_txn_id', o.psp_txn_id, 'idempotency_key', r.idempotency_key)
              || r.params)::text)::pay.http_request;
END $$;

CREATE FUNCTION pay._outbox_request(r pay.outbox, p_secret text DEFAULT NULL) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g pay.gateways;
BEGIN
  IF r.kind = 'merchant_notification' THEN
    RETURN pay._build_merchant_notification(r, p_secret);
  END IF;
  SELECT * INTO g FROM pay.gateways WHERE name = substr(r.destination, length('gateway:') + 1);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'gateway of % does not exist', r.destination USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- statements: no order (89_statement_fetch.sql)
  IF r.operation LIKE 'fetch\_statement%' THEN
    RETURN pay._build_statement_request(r, g);
  END IF;
  CASE g.kind
    WHEN 'stripe' THEN RETURN pay._build_stripe(r, g);
    WHEN 'alipay' THEN RETURN pay._build_alipay(r, g);
    WHEN 'wechatpay' THEN RETURN pay._build_wechatpay(r, g);
    WHEN 'generic' THEN RETURN pay._build_generic(r, g);
    ELSE
      RAISE EXCEPTION 'sending requests to % gateways is not supported', g.kind USING ERRCODE = 'feature_not_supported';
  END CASE;
END $$;
COMMENT ON FUNCTION pay._outbox_request(pay.outbox, text) IS
  'RequestBuilder: the signed HTTP request of an outbox row, built now with credentials from the secret store';

-- For the dispatcher: the requests of claimed rows; a row whose request
-- cannot be built gets the error instead.  Rows come by destination, so a
-- merchant's api_secret is read once per batch.
CREATE FUNCTION pay._outbox_requests(p_ids bigint[])
RETURNS TABLE (id bigint, method text, url text, headers text[], body text, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
  q pay.http_request;
  v_owner text;
  v_secret text;
BEGIN
  FOR r IN SELECT * FROM pay.outbox o WHERE o.id = ANY(p_ids) ORDER BY o.destination LOOP
    id := r.id;
    BEGIN
      IF r.kind = 'merchant_notification' AND r.destination IS DISTINCT FROM v_owner THEN
        v_owner := NULL;
        v_secret := pay._credential(r.destination, 'api_secret');
        v_owner := r.destination;
      END IF;
      q := pay._outbox_request(r, CASE WHEN r.kind = 'merchant_notification' THEN v_secret END);
      method := q.method; url := q.url; headers := q.headers; body := q.body; error := NULL;
      -- the row's trace, with a new span id for this attempt
      IF r.trace_id IS NOT NULL THEN
        headers := coalesce(headers, '{}') || ('traceparent: ' || pay._traceparent(r.trace_id));
      END IF;
    EXCEPTION WHEN OTHERS THEN
      method := NULL; url := NULL; headers := NULL; body := NULL;
      error := 'building the request failed: ' || SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN NEXT;
  END LOOP;
END $$;

-- ---------------------------------------------------------------------------
-- Applying a PSP's answer (2xx) to the order.  Returns NULL, or why the answer
-- could not be applied (the row then goes dead for a person to look at).

CREATE FUNCTION pay._store_psp_txn_id(p_order bigint, p_txn text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE pay.orders SET psp_txn_id = p_txn
   WHERE id = p_order AND psp_txn_id IS NULL AND p_txn IS NOT NULL AND p_txn <> ''
$$;

CREATE FUNCTION pay._outbox_apply(p_id bigint, p_status integer, p_body text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
  g pay.gateways;
  v jsonb;
  v_resp jsonb;
BEGIN
  SELECT * INTO r FROM pay.outbox WHERE id = p_id;
  IF NOT FOUND OR r.kind <> 'psp_request' THEN
    RETURN NULL;
  END IF;
  SELECT * INTO g FROM pay.gateways WHERE name = substr(r.destination, length('gateway:') + 1);
  IF r.operation LIKE 'fetch\_statement%' THEN
    RETURN pay._apply_statement_answer(r, g, p_body);
  END IF;
  BEGIN
    v := CASE WHEN coalesce(p_body, '') = '' THEN '{}'::jsonb ELSE p_body::jsonb END;
  EXCEPTION WHEN OTHERS THEN
    RETURN 'the answer is not JSON';
  END;
  CASE g.kind
    WHEN 'stripe' THEN
      IF r.operation IN ('create_payment', 'query') THEN
        PERFORM pay._store_psp_txn_id(r.order_id,
                  CASE WHEN v ? 'data' THEN v->'data'->0->>'id' ELSE v->>'id' END);
      END IF;
    WHEN 'alipay' THEN
      v_resp := v->(replace(CASE r.operation WHEN 'create_payment' THEN 'alipay.trade.precreate'
                                             WHEN 'query' THEN 'alipay.trade.query'
                                             WHEN 'refund' THEN 'alipay.trade.refund'
                                             ELSE 'alipay.trade.close' END, '.', '_') || '_response');
      IF v_resp IS NULL OR v_resp->>'code' IS DISTINCT FROM '10000' THEN
        RETURN format('alipay answered %s %s', coalesce(v_resp->>'code', '(no code)'),
                      coalesce(v_resp->>'sub_code', v_resp->>'msg', ''));
      END IF;
      IF NOT pay.alipay_response_valid(p_body, pay._credential(r.destination, 'public_key')) THEN
        RETURN 'the signature of alipay''s answer does not verify';
      END IF;
      PERFORM pay._store_psp_txn_id(r.order_id, v_resp->>'trade_no');
    WHEN 'wechatpay' THEN
      PERFORM pay._store_psp_txn_id(r.order_id, v->>'transaction_id');
    WHEN 'generic' THEN
      PERFORM pay._store_psp_txn_id(r.order_id, v->>'psp_txn_id');
    ELSE
      NULL;
  END CASE;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  RETURN 'applying the answer failed: ' || SQLSTATE || ': ' || SQLERRM;
END $$;

-- Privileges (90_privileges.sql revokes everything from PUBLIC afterwards).
GRANT EXECUTE ON FUNCTION pay.enqueue_psp_request(bigint, text, jsonb), pay.gateway_available(text)
  TO pay_app, pay_admin;
GRANT EXECUTE ON FUNCTION pay.enqueue_merchant_notification(bigint, text) TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.redrive(bigint), pay.redrive_dead(text, integer),
    pay.purge_outbox(interval, integer), pay.dispatcher_status(), pay.form_urlencode(jsonb)
  TO pay_admin;
GRANT SELECT ON pay.outbox, pay.outbox_attempts, pay.outbox_dead_letters, pay.circuit_breakers,
    pay.circuits, pay.dispatcher
  TO pay_admin;
-- PSP callbacks: pay.handle_callback records every callback as received,
-- verifies it with the gateway's stored credentials, rejects stale and
-- replayed ones, deduplicates by the PSP's event id, checks the amount
-- against the order, applies the event and answers what the PSP expects.
-- It is C (src/callback_handle.c), and so are the Stripe and Alipay
-- parsers and the common case of applying an event (a payment for a
-- pending order, src/callback_apply.c); the PL/pgSQL below parses WeChat
-- Pay and the generic scheme and applies every other event.
--
-- The internal helpers below (names beginning with "_") carry no SET
-- clause: they run only inside pay.handle_callback, a SECURITY DEFINER
-- function that pinned search_path, and no role may execute them directly
-- (a SET clause costs a settings save and restore on every call).
--
-- Each provider's parser turns a verified callback into one normalised
-- event (jsonb):
--   event_id    the PSP's id of this notification (deduplication key)
--   nonce       a per-delivery nonce, where the scheme has one (replay check)
--   kind        payment_succeeded | payment_failed | refunded | closed | ignored
--   order_ref   our order id as the PSP echoes it, or NULL
--   psp_txn_id  the PSP's transaction id
--   amount      minor units, or amount_major: a decimal string (Alipay)
--   currency    ISO 4217 as the PSP names it (Stripe's lower case made
--               upper, ASCII letters only), or NULL when it names none;
--               either way it must be the order's (see _apply_event)
--   refund_id, refund_amount (this refund) or refund_total (cumulative)
--   type        the PSP's own name of the event, for the record
--
-- A parameter with an empty value (form, or a JSON object's "" or null) is
-- left out before a parser reads anything: the canonical strings that the
-- form-based schemes sign leave it out, so it is not signed.
--
-- What is kept (src/callback_record.c): a callback to a name that is no
-- gateway taking callbacks is only counted per day; any other gets a row
-- with at most pay.callback_unverified_body_max bytes of its body (64 kB)
-- until it is verified, and its whole body once it is.  pay.purge_callbacks
-- removes the rows that moved nothing; accepted callbacks stay.

CREATE TABLE pay.callbacks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway       text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    headers       jsonb NOT NULL,
    body          text,
    body_bytes    bytea,
    -- received, accepted, duplicate, rejected or error (src/callback_check.c)
    verdict       text NOT NULL DEFAULT 'received',
    reason_code   text,
    reason        text,
    event_id      text,
    event_type    text,
    order_id      bigint,
    outcome       text,
    http_status   integer,
    body_length   integer,             -- added in 0.2: new columns go last
    -- the W3C trace id the callback carried, else its order's
    trace_id      text
);
CREATE FUNCTION pay._callback_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_callback_check' LANGUAGE C;
CREATE TRIGGER callbacks_check BEFORE INSERT OR UPDATE ON pay.callbacks
    FOR EACH ROW EXECUTE FUNCTION pay._callback_check();
ALTER TABLE pay.callbacks ENABLE ALWAYS TRIGGER callbacks_check;
CREATE INDEX callbacks_order ON pay.callbacks (order_id) WHERE order_id IS NOT NULL;
-- what pay.purge_callbacks looks for; an accepted callback leaves it when
-- its verdict is recorded, so the payment path does not add to it
CREATE INDEX callbacks_purgeable ON pay.callbacks (received_at) WHERE verdict <> 'accepted';
COMMENT ON TABLE pay.callbacks IS
  'every callback to a gateway that takes callbacks, as received (headers; the body byte for byte once verified, else its first pay.callback_unverified_body_max bytes), with its verdict, the reason of a rejection and what it changed';
COMMENT ON COLUMN pay.callbacks.body IS
  'the body as received; cut to pay.callback_unverified_body_max bytes (on a character boundary) unless the callback was accepted or is a duplicate of an accepted one';
COMMENT ON COLUMN pay.callbacks.body_bytes IS
  'the raw bytes of a body pay-proxy refused to pass as text (not UTF-8), cut like body; body is then NULL';
COMMENT ON COLUMN pay.callbacks.body_length IS
  'the length in bytes of the body as received, also when less of it is kept';

CREATE TABLE pay.unknown_gateway_callbacks (
    day           date PRIMARY KEY,
    callbacks     bigint NOT NULL,
    body_bytes    bigint NOT NULL,
    last_gateway  text,
    last_at       timestamptz NOT NULL
);
COMMENT ON TABLE pay.unknown_gateway_callbacks IS
  'callbacks to names that are no gateway taking callbacks: counted per day (UTC), never stored; the last name tried (64 characters at most)';

CREATE TABLE pay.callback_events (
    gateway      text NOT NULL,
    event_id     text NOT NULL,
    callback_id  bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, event_id)
);
COMMENT ON TABLE pay.callback_events IS 'PSP event ids already applied: a repeat is acknowledged and changes nothing';

CREATE TABLE pay.callback_nonces (
    gateway      text NOT NULL,
    nonce        text NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, nonce)
);
CREATE INDEX callback_nonces_age ON pay.callback_nonces (seen_at);
COMMENT ON TABLE pay.callback_nonces IS 'nonces seen within the timestamp window; a reuse is a replay (PY012)';

CREATE TABLE pay.anomalies (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint,
    gateway      text,
    callback_id  bigint,
    kind         text NOT NULL,
    detail       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.anomalies IS
  'authentic PSP messages that did not fit the order (wrong amount, payment after cancel, double payment); for a human to look at';

CREATE TABLE pay.deferred_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway      text NOT NULL,
    order_id     bigint NOT NULL,
    callback_id  bigint NOT NULL,
    event        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz
);
CREATE INDEX deferred_events_waiting ON pay.deferred_events (order_id) WHERE applied_at IS NULL;
COMMENT ON TABLE pay.deferred_events IS
  'events that arrived before the one they depend on (a refund before the payment); applied when it arrives';

-- Refuse a timestamp outside the gateway's window, options.tolerance_s
-- (default 300 s), with PY011 (src/callback_event.c).
CREATE FUNCTION pay._check_window(g pay.gateways, p_at timestamptz) RETURNS void
    AS 'MODULE_PATHNAME', 'pay_check_window' LANGUAGE C STABLE;

-- A gateway's credential from the secret store (pay._credential, shared
-- with the dispatcher); a missing one is a configuration error, never a
-- reason to accept.
CREATE FUNCTION pay._gateway_secret(g pay.gateways, p_name text) RETURNS text
LANGUAGE sql STABLE
RETURN pay._credential('gateway:' || g.name, p_name);

-- Unix seconds as a timestamp; garbage is PY011 (src/callback_event.c).
CREATE FUNCTION pay._unix_time(p_text text) RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'pay_unix_time' LANGUAGE C IMMUTABLE;

-- The body as a JSON object, or a clear 22P02 (src/json_body.c).
CREATE FUNCTION pay._json_body(p_body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_json_body' LANGUAGE C IMMUTABLE;

-- Refuse a body whose Content-Type is not one the provider sends (src/callback_event.c).
CREATE FUNCTION pay._require_content_type(h jsonb, VARIADIC p_allowed text[]) RETURNS void
    AS 'MODULE_PATHNAME', 'pay_require_content_type' LANGUAGE C STABLE;

-- WeChat Pay v3: RSA over "timestamp\nnonce\nbody\n" with the platform
-- certificate named by Wechatpay-Serial; the resource is AES-256-GCM under
-- the APIv3 key.
CREATE FUNCTION pay._callback_wechatpay(g pay.gateways, h jsonb, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_ts text := h->>'wechatpay-timestamp';
  v_nonce text := h->>'wechatpay-nonce';
  v_sig text := h->>'wechatpay-signature';
  v_serial text := h->>'wechatpay-serial';
  v_cert text;
  v_msg jsonb;
  v_res jsonb;
  v_tx jsonb;
  v_type text;
BEGIN
  IF v_ts IS NULL OR v_nonce IS NULL OR v_sig IS NULL OR v_serial IS NULL THEN
    RAISE EXCEPTION 'Wechatpay-Timestamp, -Nonce, -Signature and -Serial headers are required'
      USING ERRCODE = 'PY010';
  END IF;
  PERFORM pay._require_content_type(h, 'application/json');
  IF v_serial !~ '^[A-Za-z0-9]{1,64}$' THEN
    RAISE EXCEPTION 'Wechatpay-Serial is malformed' USING ERRCODE = 'PY010';
  END IF;
  BEGIN
    v_cert := pay._gateway_secret(g, 'platform_cert:' || v_serial);
  EXCEPTION WHEN undefined_object THEN
    RAISE EXCEPTION 'no platform certificate with serial %', v_serial USING ERRCODE = 'PY010';
  END;
  IF NOT pay.wechatpay_signature_valid(v_ts, v_nonce, p_body, v_sig, v_cert) THEN
    RAISE EXCEPTION 'Wechatpay-Signature does not verify' USING ERRCODE = 'PY010';
  END IF;
  PERFORM pay._check_window(g, pay._unix_time(v_ts));
  v_msg := pay._json_body(p_body);
  v_res := v_msg->'resource';
  IF jsonb_typeof(v_res) IS DISTINCT FROM 'object' OR v_res->>'algorithm' IS DISTINCT FROM 'AEAD_AES_256_GCM' THEN
    RAISE EXCEPTION 'WeChat Pay notification has no AEAD_AES_256_GCM resource' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_tx := pay._json_body(pay.wechatpay_decrypt(pay._gateway_secret(g, 'apiv3_key'), v_res->>'nonce',
                                               coalesce(v_res->>'associated_data', ''), v_res->>'ciphertext'));
  v_type := v_msg->>'event_type';
  RETURN jsonb_build_object(
    'event_id', v_msg->>'id',
    'nonce', v_nonce,
    'type', v_type,
    'kind', CASE
              WHEN v_type LIKE 'REFUND.%' THEN CASE WHEN v_tx->>'refund_status' = 'SUCCESS' THEN 'refunded' ELSE 'ignored' END
              WHEN v_tx->>'trade_state' = 'SUCCESS' THEN 'payment_succeeded'
              WHEN v_tx->>'trade_state' = 'PAYERROR' THEN 'payment_failed'
              WHEN v_tx->>'trade_state' = 'CLOSED' THEN 'closed'
              ELSE 'ignored' END,
    'order_ref', v_tx->>'out_trade_no',
    'psp_txn_id', v_tx->>'transaction_id',
    'amount', v_tx->'amount'->>'total',
    'currency', coalesce(v_tx->'amount'->>'currency', 'CNY'),
    'refund_id', v_tx->>'refund_id',
    'refund_amount', v_tx->'amount'->>'refund');
END $$;

-- pay's own generic scheme: a JSON object or form body whose sign is the hex
-- HMAC-SHA256 of the canonical string of the other fields: event_id,
-- out_trade_no (our order id), trade_no, status (paid, failed, refunded,
-- closed), amount (minor units), currency, refund_id, refund_amount,
-- timestamp (unix seconds) and nonce.
CREATE FUNCTION pay._callback_generic(g pay.gateways, h jsonb, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  p jsonb;
  v_status text;
BEGIN
  PERFORM pay._require_content_type(h, 'application/json', 'application/x-www-form-urlencoded');
  p := CASE WHEN lower(h->>'content-type') LIKE 'application/json%' THEN pay._json_body(p_body)
            ELSE pay.parse_form(p_body) END;
  -- the signed string leaves out empty values: so does everything below
  p := (SELECT coalesce(jsonb_object_agg(f.key, f.value), '{}') FROM jsonb_each(p) f
         WHERE f.value NOT IN ('""'::jsonb, 'null'::jsonb));
  v_status := p->>'status';
  IF p->>'sign' IS NULL OR NOT pay.constant_time_equal(
       pay.sign_params(p - 'sign', pay._gateway_secret(g, 'webhook_secret')), lower(p->>'sign')) THEN
    RAISE EXCEPTION 'sign does not verify' USING ERRCODE = 'PY010';
  END IF;
  PERFORM pay._check_window(g, pay._unix_time(p->>'timestamp'));
  IF p->>'nonce' IS NULL OR length(p->>'nonce') NOT BETWEEN 8 AND 64 THEN
    RAISE EXCEPTION 'nonce must be 8 to 64 characters' USING ERRCODE = 'PY012';
  END IF;
  RETURN jsonb_build_object(
    'event_id', p->>'event_id',
    'nonce', p->>'nonce',
    'type', v_status,
    'kind', CASE v_status WHEN 'success' THEN 'payment_succeeded' WHEN 'paid' THEN 'payment_succeeded'
                          WHEN 'failed' THEN 'payment_failed' WHEN 'refunded' THEN 'refunded'
                          WHEN 'closed' THEN 'closed' ELSE 'ignored' END,
    'order_ref', p->>'out_trade_no',
    'psp_txn_id', p->>'trade_no',
    'amount', p->>'amount',
    'currency', p->>'currency',
    'refund_id', p->>'refund_id',
    'refund_amount', p->>'refund_amount');
END $$;

-- A minor-unit amount from an event: integer text, or a major-unit decimal
-- converted with the currency's exponent.  Never floating point.
CREATE FUNCTION pay._event_amount(p_minor text, p_major text, p_currency text) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF p_minor IS NOT NULL THEN
    IF p_minor !~ '^[0-9]{1,18}$' THEN
      RAISE EXCEPTION 'callback amount "%" is not a whole number of minor units', p_minor
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_minor::bigint;
  END IF;
  IF p_major IS NOT NULL THEN
    RETURN pay.parse_amount(p_major, p_currency);
  END IF;
  RETURN NULL;
END $$;

-- The order an event is about, among the orders routed to this gateway:
-- our id as the merchant reference, else the PSP's transaction id.
CREATE FUNCTION pay._callback_order(g pay.gateways, e jsonb) RETURNS pay.orders
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
BEGIN
  IF e->>'order_ref' ~ '^[0-9]{1,18}$' THEN
    SELECT * INTO o FROM pay.orders WHERE id = (e->>'order_ref')::bigint AND gateway = g.name FOR UPDATE;
  END IF;
  IF o.id IS NULL AND e->>'psp_txn_id' IS NOT NULL THEN
    SELECT * INTO o FROM pay.orders WHERE gateway = g.name AND psp_txn_id = e->>'psp_txn_id' FOR UPDATE;
  END IF;
  IF o.id IS NULL THEN
    RAISE EXCEPTION 'no order routed to gateway % matches reference "%" or transaction "%"',
      g.name, e->>'order_ref', e->>'psp_txn_id'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN o;
END $$;

CREATE FUNCTION pay._anomaly(o pay.orders, g pay.gateways, p_callback bigint, p_kind text, p_detail text)
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pay.anomalies (order_id, gateway, callback_id, kind, detail)
    VALUES (o.id, g.name, p_callback, p_kind, p_detail);
  RETURN 'anomaly ' || p_kind || ': ' || p_detail;
END $$;

-- Money that reached us for an order that cannot take it (cancelled, or
-- already paid by another transaction): book it, book it back, queue the
-- refund at the PSP and record the anomaly.  Money is always accounted for.
CREATE FUNCTION pay._book_and_return(o pay.orders, g pay.gateways, e jsonb, p_callback bigint, p_amount bigint,
                                     p_kind text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_psp bigint := pay._account('psp:' || g.name || ':' || o.currency, o.currency);
  v_merchant bigint := pay._merchant_account(o.merchant_id, o.currency);
  v_ref text := g.name || ':' || coalesce(e->>'psp_txn_id', e->>'event_id');
  v_refund bigint;
BEGIN
  PERFORM pay._post('unexpected-payment:' || v_ref, o.id, ARRAY[v_psp, v_merchant], ARRAY[-p_amount, p_amount]);
  PERFORM pay._post('automatic-refund:' || v_ref, o.id, ARRAY[v_merchant, v_psp], ARRAY[-p_amount, p_amount]);
  -- the refund row the PSP request names; the order's own refunded_amount
  -- stays as it is (this money was never the order's)
  INSERT INTO pay.refunds (order_id, amount, reason, idempotency_key)
    VALUES (o.id, p_amount, 'automatic refund: payment ' || coalesce(e->>'psp_txn_id', '?') || ' for an order that is ' || o.status,
            'auto:' || v_ref)
    RETURNING id INTO v_refund;
  PERFORM pay.enqueue_psp_request(o.id, 'refund',
    jsonb_build_object('refund_id', v_refund, 'psp_txn_id', e->>'psp_txn_id', 'amount', p_amount));
  RETURN pay._anomaly(o, g, p_callback, p_kind,
    format('%s %s paid by %s to order %s (%s); booked and refunded automatically',
           pay.format_amount(p_amount, o.currency), o.currency, e->>'psp_txn_id', o.id, o.status));
END $$;

-- A refund the PSP reports (it happened there): book the part we have not
-- booked yet.  Returns the outcome.
CREATE FUNCTION pay._apply_psp_refund(o pay.orders, g pay.gateways, e jsonb, p_callback bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_amount bigint;
  v_key text := 'psp:' || coalesce(e->>'refund_id', e->>'event_id');
BEGIN
  IF EXISTS (SELECT 1 FROM pay.refunds WHERE order_id = o.id AND idempotency_key = v_key) THEN
    RETURN 'refund already booked';
  END IF;
  IF e ? 'refund_total' OR e ? 'refund_total_major' THEN
    v_amount := pay._event_amount(e->>'refund_total', e->>'refund_total_major', o.currency) - o.refunded_amount;
  ELSE
    v_amount := pay._event_amount(e->>'refund_amount', NULL, o.currency);
  END IF;
  IF v_amount IS NULL OR v_amount <= 0 THEN
    RETURN 'no new refund amount';
  END IF;
  IF v_amount > o.amount - o.refunded_amount THEN
    RETURN pay._anomaly(o, g, p_callback, 'refund_exceeds',
      format('PSP refund of %s exceeds the refundable %s', v_amount, o.amount - o.refunded_amount));
  END IF;
  PERFORM pay._book_refund(o, v_amount, 'refunded at the PSP (' || coalesce(e->>'type', '') || ')', v_key);
  RETURN format('refund of %s booked', v_amount);
END $$;

-- The events that were waiting for an order's payment (a refund that came
-- before it), applied now that it is paid: "; <outcome>" for each, or ''.
-- The caller holds the order's lock.
CREATE FUNCTION pay._apply_deferred(g pay.gateways, p_order bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
  d pay.deferred_events;
  v_outcome text := '';
BEGIN
  FOR d IN SELECT * FROM pay.deferred_events x WHERE x.order_id = p_order AND x.applied_at IS NULL ORDER BY x.id LOOP
    SELECT * INTO o FROM pay.orders WHERE id = p_order;
    v_outcome := v_outcome || '; ' || pay._apply_psp_refund(o, g, d.event, d.callback_id);
    UPDATE pay.deferred_events SET applied_at = now() WHERE id = d.id;
  END LOOP;
  RETURN v_outcome;
END $$;

-- Apply one verified, new event to its order.  Returns the outcome.
--
-- Every event that is about an order must be in the order's currency: one
-- that names none, or another, is an anomaly that moves nothing (never
-- "then the order's": a USD order must not be settled by yuan).  Like an
-- amount mismatch it is acknowledged (2xx) and its event id used up: it is
-- authentic and will never apply, so the PSP must not send it for days.
-- p_callback is NULL for an event a PSP's statement proves
-- (pay.repair_break): its e->>'cause' then says where it came from.
CREATE FUNCTION pay._apply_event(g pay.gateways, e jsonb, p_callback bigint, OUT order_id bigint, OUT outcome text)
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
  v_amount bigint;
  v_currency text := e->>'currency';
BEGIN
  IF e->>'kind' = 'ignored' THEN
    outcome := 'ignored event type ' || coalesce(e->>'type', '(none)');
    RETURN;
  END IF;
  o := pay._callback_order(g, e);
  order_id := o.id;
  IF v_currency IS NULL THEN
    outcome := pay._anomaly(o, g, p_callback, 'currency_missing',
      format('callback names no currency, order %s is in %s', o.id, o.currency));
    RETURN;
  ELSIF v_currency <> o.currency::text THEN
    outcome := pay._anomaly(o, g, p_callback, 'currency_mismatch',
      format('callback says %s, order %s is in %s', v_currency, o.id, o.currency));
    RETURN;
  END IF;

  IF e->>'kind' = 'refunded' THEN
    IF o.paid_at IS NULL THEN
      INSERT INTO pay.deferred_events (gateway, order_id, callback_id, event) VALUES (g.name, o.id, p_callback, e);
      outcome := 'refund deferred until the payment arrives';
    ELSE
      outcome := pay._apply_psp_refund(o, g, e, p_callback);
    END IF;
    RETURN;
  END IF;

  -- a payment must match exactly; a failure or close is checked when it names an amount
  v_amount := pay._event_amount(e->>'amount', e->>'amount_major', v_currency);
  IF v_amount <> o.amount OR (v_amount IS NULL AND e->>'kind' = 'payment_succeeded') THEN
    outcome := pay._anomaly(o, g, p_callback, 'amount_mismatch',
      format('callback says %s %s, order %s is %s %s', coalesce(v_amount::text, '(none)'), v_currency,
             o.id, o.amount, o.currency));
    RETURN;
  END IF;

  CASE e->>'kind'
  WHEN 'payment_succeeded' THEN
    IF o.status IN ('pending', 'failed') THEN
      o := pay._settle(o, e->>'psp_txn_id', coalesce('callback ' || p_callback, e->>'cause'));
      outcome := 'paid' || pay._apply_deferred(g, o.id);
    ELSIF o.paid_at IS NOT NULL AND o.psp_txn_id IS NOT DISTINCT FROM e->>'psp_txn_id' THEN
      outcome := 'already paid by this transaction';
    ELSIF o.paid_at IS NOT NULL THEN
      outcome := pay._book_and_return(o, g, e, p_callback, v_amount, 'double_payment');
    ELSE
      outcome := pay._book_and_return(o, g, e, p_callback, v_amount, 'payment_after_' || o.status);
    END IF;
  WHEN 'payment_failed' THEN
    IF o.status = 'pending' THEN
      UPDATE pay.orders SET status = 'failed', status_cause = 'callback ' || p_callback
       WHERE id = o.id RETURNING * INTO o;
      outcome := 'failed';
    ELSE
      outcome := 'failure ignored: order is ' || o.status;
    END IF;
  WHEN 'closed' THEN
    IF o.status = 'pending' THEN
      UPDATE pay.orders SET status = 'cancelled', status_cause = 'callback ' || p_callback
       WHERE id = o.id RETURNING * INTO o;
      outcome := 'cancelled';
    ELSE
      outcome := 'close ignored: order is ' || o.status;
    END IF;
  END CASE;
END $$;

CREATE FUNCTION pay.handle_callback(provider text, headers jsonb, body text)
RETURNS SETOF pay.http_response
    AS 'MODULE_PATHNAME', 'pay_handle_callback'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.handle_callback(text, jsonb, text) IS
  'records, verifies, deduplicates and applies a PSP callback; answers the status and body the PSP expects; never raises for a bad callback';

-- Nonces older than every gateway's window can go.
CREATE FUNCTION pay.purge_callback_nonces(older_than interval DEFAULT interval '1 hour') RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM pay.callback_nonces WHERE seen_at < now() - older_than;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_callback_nonces(interval) IS
  'deletes callback nonces older than the replay window (keep it above every gateway''s tolerance_s)';

-- Callbacks that moved nothing, received more than older_than ago:
-- rejected, error and duplicate ones, at most max_rows of them, oldest
-- first; and the day counts of unknown gateways as old.  Accepted
-- callbacks stay as long as the ledger: they are the source documents of
-- what they booked or changed (pay.order_events.cause says "callback
-- <id>"), and callback_events, anomalies and deferred_events name them; only a PSP's signature gets a callback accepted, so they grow
-- with the business, not with what anyone sends.  Returns how many
-- callbacks it deleted; run it until it returns less than max_rows.
CREATE FUNCTION pay.purge_callbacks(older_than interval, max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF older_than IS NULL OR older_than < interval '0' THEN
    RAISE EXCEPTION 'older_than must be an interval of zero or more' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- the partial index callbacks_purgeable holds exactly these rows
  DELETE FROM pay.callbacks c
   WHERE c.id IN (SELECT x.id FROM pay.callbacks x
                   WHERE x.verdict <> 'accepted' AND x.received_at < now() - older_than
                   ORDER BY x.received_at LIMIT max_rows);
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM pay.unknown_gateway_callbacks u WHERE u.day < ((now() - older_than) AT TIME ZONE 'UTC')::date;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_callbacks(interval, integer) IS
  'deletes up to max_rows callbacks older than older_than that were not accepted (rejected, error, duplicate), and the unknown-gateway day counts as old; returns how many callbacks';

-- A callback pay-proxy refused before handle_callback (body over its limit,
-- or not UTF-8 text): recorded all the same, with at most the
-- unverified-body bound of the bytes it kept; to an unknown gateway, only
-- counted (src/callback_record.c).
CREATE FUNCTION pay.record_unreadable_callback(provider text, headers jsonb, reason_code text, reason text,
                                               body_bytes bytea, http_status integer)
RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_record_unreadable_callback'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.record_unreadable_callback(text, jsonb, text, text, bytea, integer) IS
  'records a callback that pay-proxy refused before handle_callback (too large, not UTF-8); NULL, only counted, for a name that is no gateway taking callbacks';

GRANT EXECUTE ON FUNCTION pay.handle_callback(text, jsonb, text),
    pay.record_unreadable_callback(text, jsonb, text, text, bytea, integer) TO pay_callback;
GRANT EXECUTE ON FUNCTION pay.purge_callback_nonces(interval), pay.purge_callbacks(interval, integer) TO pay_admin;
GRANT SELECT ON pay.callbacks, pay.callback_events, pay.anomalies, pay.deferred_events,
    pay.unknown_gateway_callbacks TO pay_admin;
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
-- The merchant REST API behind pay-proxy: POST /api/v1/payments and
-- GET /api/v1/payments/{id}.  Requests are authenticated here, in SQL, as
-- follows: X-Pay-Signature is the hex HMAC-SHA256 (pay.sign_params)
-- of the request's parameters plus merchant, timestamp and nonce, under the
-- merchant's api_secret; the timestamp must be within the window and the
-- nonce unused.  Errors are raised with their SQLSTATE; pay-proxy maps them
-- to HTTP statuses.

CREATE TABLE pay.api_nonces (
    merchant_id  bigint NOT NULL,
    nonce        text NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, nonce)
);
CREATE INDEX api_nonces_age ON pay.api_nonces (seen_at);
COMMENT ON TABLE pay.api_nonces IS 'nonces of signed merchant API requests within the window; a reuse is a replay (PY012)';

-- Seconds a signed merchant request stays valid.
CREATE FUNCTION pay._api_window_s() RETURNS integer
LANGUAGE sql IMMUTABLE RETURN 300;

-- Authenticate a merchant request: returns the merchant's id.  The same
-- PY010 for an unknown merchant and a wrong signature, so the answer does
-- not tell which merchant codes exist.
CREATE FUNCTION pay._api_authenticate(h jsonb, p_params jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_code text := h->>'x-pay-merchant';
  v_ts text := h->>'x-pay-timestamp';
  v_nonce text := h->>'x-pay-nonce';
  v_sig text := h->>'x-pay-signature';
  v_merchant bigint;
  v_secret text;
BEGIN
  IF v_code IS NULL OR v_ts IS NULL OR v_nonce IS NULL OR v_sig IS NULL THEN
    RAISE EXCEPTION 'X-Pay-Merchant, X-Pay-Timestamp, X-Pay-Nonce and X-Pay-Signature headers are required'
      USING ERRCODE = 'PY010';
  END IF;
  SELECT id INTO v_merchant FROM pay.merchants WHERE code = v_code;
  IF FOUND THEN
    BEGIN
      v_secret := pay.reveal_secret('merchant:' || v_code, 'api_secret');
    EXCEPTION WHEN undefined_object THEN
      v_secret := NULL;
    END;
  END IF;
  IF v_secret IS NULL OR NOT pay.constant_time_equal(
       pay.sign_params(p_params || jsonb_build_object('merchant', v_code, 'timestamp', v_ts, 'nonce', v_nonce),
                       v_secret),
       lower(v_sig)) THEN
    RAISE EXCEPTION 'X-Pay-Signature does not verify' USING ERRCODE = 'PY010';
  END IF;
  IF v_ts !~ '^[0-9]{1,12}$' OR abs(extract(epoch FROM now()) - v_ts::bigint) > pay._api_window_s() THEN
    RAISE EXCEPTION 'X-Pay-Timestamp is outside the % s window', pay._api_window_s() USING ERRCODE = 'PY011';
  END IF;
  IF length(v_nonce) NOT BETWEEN 8 AND 64 THEN
    RAISE EXCEPTION 'X-Pay-Nonce must be 8 to 64 characters' USING ERRCODE = 'PY012';
  END IF;
  INSERT INTO pay.api_nonces (merchant_id, nonce) VALUES (v_merchant, v_nonce) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'X-Pay-Nonce was already used' USING ERRCODE = 'PY012';
  END IF;
  RETURN v_merchant;
END $$;

-- An order as the API shows it.
CREATE FUNCTION pay._order_json(o pay.orders) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object(
  'id', o.id, 'merchant_order_no', o.merchant_order_no, 'amount', o.amount, 'currency', o.currency,
  'status', o.status, 'refunded_amount', o.refunded_amount, 'gateway', o.gateway,
  'psp_txn_id', o.psp_txn_id, 'metadata', o.metadata, 'expires_at', o.expires_at,
  'paid_at', o.paid_at, 'created_at', o.created_at, 'updated_at', o.updated_at);

CREATE FUNCTION pay.api_create_payment(headers jsonb, body text) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  p jsonb;
  v_merchant bigint;
  o pay.orders;
BEGIN
  -- the request's trace (pay-proxy passes its traceparent header) unless the caller set one
  IF h ? 'traceparent' AND coalesce(current_setting('pay.traceparent', true), '') = '' THEN
    PERFORM set_config('pay.traceparent', h->>'traceparent', true);
  END IF;
  BEGIN
    p := body::jsonb;
  EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'body is not valid JSON' USING ERRCODE = 'invalid_text_representation';
  END;
  IF jsonb_typeof(p) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'body must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_merchant := pay._api_authenticate(h, p);
  IF jsonb_typeof(p->'merchant_order_no') IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'merchant_order_no must be a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(p->'amount') IS DISTINCT FROM 'number' OR (p->>'amount') !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'amount must be a whole number of minor units' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(p->'currency') IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'currency must be a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p ? 'expires_in_s' AND (p->>'expires_in_s') !~ '^[0-9]{1,9}$' THEN
    RAISE EXCEPTION 'expires_in_s must be a whole number of seconds' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p - '{merchant_order_no,amount,currency,metadata,expires_in_s,gateway}'::text[] <> '{}' THEN
    RAISE EXCEPTION 'unknown field "%"',
      (SELECT min(k) FROM jsonb_object_keys(p - '{merchant_order_no,amount,currency,metadata,expires_in_s,gateway}'::text[]) k)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  o := pay.create_order((SELECT code FROM pay.merchants WHERE id = v_merchant),
                        p->>'merchant_order_no', (p->>'amount')::bigint, p->>'currency',
                        idempotency_key => h->>'idempotency-key',
                        expires_in => coalesce((p->>'expires_in_s')::integer * interval '1 second', interval '15 minutes'),
                        metadata => coalesce(p->'metadata', '{}'),
                        gateway => p->>'gateway');
  RETURN NEXT ROW(201, 'application/json', pay._order_json(o)::text)::pay.http_response;
END $$;
COMMENT ON FUNCTION pay.api_create_payment(jsonb, text) IS
  'POST /api/v1/payments: a signed merchant request creating an order (Idempotency-Key honoured); 201 with the order';

CREATE FUNCTION pay.api_get_payment(headers jsonb, id text) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  v_merchant bigint;
  o pay.orders;
BEGIN
  v_merchant := pay._api_authenticate(h, jsonb_build_object('id', id));
  IF id !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'id must be an order id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM pay.orders x WHERE x.id = api_get_payment.id::bigint AND x.merchant_id = v_merchant;
  -- a role bound to other merchants (53_merchant_binding.sql) does not see it either
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    -- another merchant's order is as absent as one that does not exist
    RETURN NEXT ROW(404, 'application/json',
                    '{"error":{"code":"not_found","message":"no such payment"}}')::pay.http_response;
    RETURN;
  END IF;
  RETURN NEXT ROW(200, 'application/json', pay._order_json(o)::text)::pay.http_response;
END $$;
COMMENT ON FUNCTION pay.api_get_payment(jsonb, text) IS
  'GET /api/v1/payments/{id}: a signed merchant request reading one of its orders';

-- API nonces older than the window can go.
CREATE FUNCTION pay.purge_api_nonces() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM pay.api_nonces WHERE seen_at < now() - 2 * pay._api_window_s() * interval '1 second';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_api_nonces() IS 'deletes merchant API nonces older than twice the signature window';

GRANT EXECUTE ON FUNCTION pay.api_create_payment(jsonb, text), pay.api_get_payment(jsonb, text) TO pay_app;
GRANT EXECUTE ON FUNCTION pay.purge_api_nonces() TO pay_admin;
-- Observability: pay.metrics(), the Prometheus text that pay-proxy serves
-- at GET /metrics.  Counters live in shared memory (src/metrics.c) and exist
-- only when pay is in shared_preload_libraries; the gauges are read from
-- the tables at each call, hence SECURITY DEFINER: the scraper needs no
-- grant on the tables, and sees only counts.
CREATE FUNCTION pay.metrics() RETURNS text
    AS 'MODULE_PATHNAME', 'pay_metrics'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.metrics() IS
  'counters, histograms and gauges in the Prometheus text exposition format (names pay_*); the counters need pay in shared_preload_libraries';
GRANT EXECUTE ON FUNCTION pay.metrics() TO pay_callback, pay_admin, pay_readonly;
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
-- Periodic jobs on pg_cron.
--
-- pay does not depend on pg_cron: CREATE EXTENSION pay works without it,
-- and nothing here names the cron schema outside dynamic SQL.
-- pay.schedule_jobs() creates or updates the named jobs (names begin with
-- "pay:") in the database pg_cron runs in (cron.database_name); it refuses
-- with 55000 when pg_cron is not installed there.
--
-- Jobs of gateways that are gone or disabled are removed when jobs are
-- scheduled again.  Every job is one call of pay.run_job(name), which takes a transaction-
-- level advisory lock for the job and skips the run when another holds it:
-- two runs at once (a slow run overlapping the next tick, a DBA running
-- the job by hand) never do the same work twice.  The jobs themselves work
-- in bounded batches (expire_orders and the purges).

-- The jobs and when they run (pg_cron's five-field schedules, UTC): the
-- fixed ones, and a daily statement fetch per enabled gateway that pay can
-- fetch statements from (89_statement_fetch.sql), at the hour of the setting
-- pay.statement_fetch_hour (src/jobs_settings.c: 0-23, default 3; read when
-- jobs are scheduled; 3 where pay's library is not loaded yet).
CREATE FUNCTION pay._jobs() RETURNS TABLE (job text, schedule text)
LANGUAGE sql STABLE AS $$
  SELECT v.job, v.schedule FROM (VALUES
      (1, 'expire_orders', '* * * * *'),
      (2, 'janitor', '* * * * *'),
      (3, 'purge_callback_nonces', '*/5 * * * *'),
      (4, 'purge_api_nonces', '*/5 * * * *'),
      (5, 'purge_idempotency_keys', '*/5 * * * *'),
      (6, 'purge_outbox', '*/5 * * * *'),
      (7, 'purge_callbacks', '*/5 * * * *')) v(n, job, schedule)
   -- the janitor only where this installation has one
   WHERE v.job <> 'janitor' OR to_regprocedure('pay.janitor()') IS NOT NULL
  UNION ALL
  SELECT 'fetch_statement:' || g.name,
         format('15 %s * * *', coalesce(current_setting('pay.statement_fetch_hour', true), '3')::integer)
    FROM pay.gateways g WHERE g.enabled AND g.kind IN ('stripe', 'wechatpay', 'alipay')
$$;

CREATE FUNCTION pay.run_job(job text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rows bigint;
BEGIN
  IF job IS NULL OR NOT EXISTS (SELECT 1 FROM pay._jobs() j WHERE j.job = run_job.job) THEN
    RAISE EXCEPTION 'job: unknown job "%"', job USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('pay.run_job'), hashtext(job)) THEN
    RETURN job || ': skipped, already running';
  END IF;
  CASE job
    WHEN 'expire_orders' THEN v_rows := pay.expire_orders();
    WHEN 'janitor' THEN EXECUTE 'SELECT count(*) FROM (SELECT pay.janitor()) j' INTO v_rows;
    WHEN 'purge_callback_nonces' THEN v_rows := pay.purge_callback_nonces();
    WHEN 'purge_api_nonces' THEN v_rows := pay.purge_api_nonces();
    WHEN 'purge_idempotency_keys' THEN v_rows := pay.purge_idempotency_keys();
    WHEN 'purge_outbox' THEN v_rows := pay.purge_outbox();
    -- callbacks that were not accepted; accepted ones are kept with the ledger
    WHEN 'purge_callbacks' THEN v_rows := pay.purge_callbacks(interval '30 days', 10000);
    -- yesterday's statement (UTC), imported and reconciled when it arrives
    ELSE
      RETURN format('%s: outbox row %s', job, pay.fetch_statement(substr(job, length('fetch_statement:') + 1)));
  END CASE;
  RETURN format('%s: %s', job, v_rows);
END $$;
COMMENT ON FUNCTION pay.run_job(text) IS
  'runs one of pay''s periodic jobs (expire_orders, janitor, purge_callback_nonces, purge_api_nonces, purge_idempotency_keys, purge_outbox, purge_callbacks, fetch_statement:<gateway>) unless a run of it is in progress; what the pg_cron jobs call';

CREATE FUNCTION pay._require_pg_cron() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and CREATE EXTENSION pg_cron.';
  END IF;
END $$;

CREATE FUNCTION pay.schedule_jobs() RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j record;
BEGIN
  PERFORM pay._require_pg_cron();
  -- a job this installation no longer has (the janitor gone) is removed
  PERFORM pay._unschedule(ARRAY(SELECT 'pay:' || x.job FROM pay._jobs() x));
  FOR j IN SELECT * FROM pay._jobs() LOOP
    -- cron.schedule with a name creates the job or updates the one of that name
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'pay:' || j.job, j.schedule, format('SELECT pay.run_job(%L)', j.job);
    RETURN NEXT 'pay:' || j.job;
  END LOOP;
END $$;
COMMENT ON FUNCTION pay.schedule_jobs() IS
  'creates or updates pay''s pg_cron jobs (names beginning with "pay:"): expire orders every minute, the janitor if present, the purges every 5 minutes, each Stripe and WeChat Pay gateway''s statement daily at pay.statement_fetch_hour (UTC, default 3); 55000 when pg_cron is not installed here';

-- Removes pay's jobs except those named in p_keep; how many it removed.
CREATE FUNCTION pay._unschedule(p_keep text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  n integer := 0;
BEGIN
  FOR v_id IN EXECUTE 'SELECT jobid FROM cron.job WHERE jobname LIKE ''pay:%'' AND NOT (jobname = ANY ($1)) ORDER BY jobid'
      USING p_keep LOOP
    EXECUTE 'SELECT cron.unschedule($1)' USING v_id;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

CREATE FUNCTION pay.unschedule_jobs() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pay._require_pg_cron();
  RETURN pay._unschedule('{}');
END $$;
COMMENT ON FUNCTION pay.unschedule_jobs() IS
  'removes every pg_cron job of pay (names beginning with "pay:"); returns how many; 55000 when pg_cron is not installed here';

GRANT EXECUTE ON FUNCTION pay.run_job(text), pay.schedule_jobs(), pay.unschedule_jobs() TO pay_admin;
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
--   amount_mismatch   a payment's amount is not the order's; a refund's
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
                                 coalesce(by_ref.amount, by_txn.amount) AS amount,
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
  SELECT s.id, 'missing_at_psp', o.id, o.psp_txn_id, o.amount, NULL,
         format('payment of order %s (%s %s, paid %s) is on no %s statement line', o.id, o.amount, o.currency,
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
-- (pay._apply_event: the order is paid, the ledger books it once, the
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
  SELECT e.outcome INTO v_outcome FROM pay._apply_event(g, jsonb_build_object(
      'kind', 'payment_succeeded', 'order_ref', l.order_id::text, 'psp_txn_id', l.psp_txn_id,
      'amount', l.amount::text, 'currency', l.currency::text,
      'event_id', 'statement:' || l.statement_id || ':' || l.line_no,
      'cause', 'statement ' || l.statement_id || ' line ' || l.line_no), NULL) e;
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
-- Statements fetched from the PSP through the dispatcher (the outbox), then
-- imported like a downloaded file (pay.import_statement).  The day is a UTC
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
  IF g.kind NOT IN ('stripe', 'wechatpay', 'alipay') THEN
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

-- The columns pay reads, plus the order reference pay puts in the metadata.
CREATE FUNCTION pay._stripe_report_columns() RETURNS text[]
LANGUAGE sql IMMUTABLE
RETURN ARRAY['balance_transaction_id', 'created_utc', 'available_on_utc', 'currency', 'gross', 'fee', 'net',
             'reporting_category', 'source_id', 'description', 'automatic_payout_id', 'payment_intent_id',
             'payment_metadata[order_id]'];

-- RequestBuilder of the fetch steps.
CREATE FUNCTION pay._build_statement_request(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  CASE g.kind
    WHEN 'stripe' THEN RETURN pay._build_stripe_statement(r, g);
    WHEN 'wechatpay' THEN RETURN pay._build_wechatpay_statement(r, g);
    WHEN 'alipay' THEN RETURN pay._build_alipay_statement(r, g);
    ELSE
      RAISE EXCEPTION 'fetching statements from % gateways is not supported', g.kind USING ERRCODE = 'feature_not_supported';
  END CASE;
END $$;

CREATE FUNCTION pay._build_stripe_statement(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_base text := rtrim(coalesce(g.base_url, 'https://api.stripe.com'), '/');
  v_auth text := 'Authorization: Bearer ' || pay._credential('gateway:' || g.name, 'api_key');
  v_form jsonb;
BEGIN
  CASE r.operation
    WHEN 'fetch_statement' THEN
      v_form := jsonb_build_object('report_type', 'balance_change_from_activity.itemized.3',
                                   'parameters[interval_start]', r.params->>'interval_start',
                                   'parameters[interval_end]', r.params->>'interval_end')
                || (SELECT jsonb_object_agg(format('parameters[columns][%s]', n - 1), c)
                      FROM unnest(pay._stripe_report_columns()) WITH ORDINALITY AS x(c, n));
      RETURN ROW('POST', v_base || '/v1/reporting/report_runs',
                 ARRAY[v_auth, 'Idempotency-Key: ' || r.idempotency_key,
                       'Content-Type: application/x-www-form-urlencoded'],
                 pay.form_urlencode(v_form))::pay.http_request;
    WHEN 'fetch_statement_poll' THEN
      RETURN ROW('GET', v_base || '/v1/reporting/report_runs/' || (r.params->>'report_run'),
                 ARRAY[v_auth], NULL)::pay.http_request;
    WHEN 'fetch_statement_file' THEN
      RETURN ROW('GET', r.params->>'url', ARRAY[v_auth], NULL)::pay.http_request;
  END CASE;
END $$;

-- WeChat Pay signs the path and query of every call, GETs included.
CREATE FUNCTION pay._build_wechatpay_statement(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_base text := rtrim(coalesce(g.base_url, 'https://api.mch.weixin.qq.com'), '/');
  v_url text;
  v_path text;
BEGIN
  CASE r.operation
    WHEN 'fetch_statement' THEN
      v_path := '/v3/bill/tradebill?bill_date=' || (r.params->>'day') || '&bill_type=ALL';
      v_url := v_base || v_path;
    WHEN 'fetch_statement_file' THEN
      v_url := r.params->>'url';
      v_path := substr(v_url, length(substring(v_url FROM '^https?://[^/]+')) + 1);
  END CASE;
  RETURN ROW('GET', v_url,
             ARRAY['Authorization: ' || pay.wechatpay_authorization(
                       'GET', v_path, '', pay._gateway_option(g, 'mchid'), pay._gateway_option(g, 'serial_no'),
                       pay._credential('gateway:' || g.name, 'private_key'),
                       floor(extract(epoch FROM clock_timestamp()))::bigint,
                       upper(replace(gen_random_uuid()::text, '-', ''))),
                   'Accept: application/json'],
             NULL)::pay.http_request;
END $$;

-- Alipay: the bill's download URL is a plain GET (its token is in the URL).
CREATE FUNCTION pay._build_alipay_statement(r pay.outbox, g pay.gateways) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  CASE r.operation
    WHEN 'fetch_statement' THEN
      RETURN pay._alipay_request(g, 'alipay.data.dataservice.bill.downloadurl.query',
                                 jsonb_build_object('bill_type', 'trade', 'bill_date', r.params->>'day'),
                                 r.idempotency_key);
    WHEN 'fetch_statement_file' THEN
      RETURN ROW('GET', r.params->>'url', '{}'::text[], NULL)::pay.http_request;
  END CASE;
END $$;

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
-- Privileges.  PUBLIC gets nothing; each role gets what its path needs
-- (README.md, "Roles"; the regression test grants.sql lists every grant).
-- The tables belong to the extension owner; the roles reach them only
-- through SECURITY DEFINER functions with a pinned search_path, plus the
-- read access granted below.  This fragment runs after every fragment that
-- creates API objects, so the REVOKEs cover them.
REVOKE ALL ON ALL TABLES IN SCHEMA pay FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pay FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pay FROM PUBLIC;

-- Row-level security on orders, events and refunds calls this as the
-- querying role (53_merchant_binding.sql): every role that reads them.
GRANT EXECUTE ON FUNCTION pay._caller_merchants() TO pay_app, pay_admin, pay_readonly;

-- pay_app: application code creating and moving orders, wallets, refunds.
-- Never a stored secret; accounts under the system prefixes are refused
-- inside open_account; a role bound to merchants acts for those only.
GRANT EXECUTE ON FUNCTION
    pay.create_order(text, text, bigint, text, text, interval, jsonb, text),
    pay.ship(bigint), pay.complete(bigint), pay.cancel(bigint, text),
    pay.refund(bigint, bigint, text, text),
    pay.pay_with_balance(bigint, text),
    pay.open_account(text, text, boolean, integer), pay.balance(text),
    pay.parse_amount(text, text), pay.format_amount(bigint, text),
    pay.route(text, bigint, text)
  TO pay_app;
GRANT SELECT ON pay.orders, pay.order_events, pay.refunds, pay.currencies TO pay_app;

-- pay_callback: pay-proxy's callback route, nothing else.  handle_callback
-- (and record_unreadable_callback for bodies the proxy refuses) are
-- granted in 85_callbacks.sql; confirming a payment by hand (mark_paid)
-- is pay_admin's.

-- pay_admin: DBAs — set-up, merchant bindings, manual confirmations and
-- postings, jobs, reconciliation and reports.  Sees which secrets exist,
-- never a value (the secret store is the owner's).
GRANT EXECUTE ON FUNCTION
    pay.create_merchant(text, text, text), pay.create_gateway(text, text, text, jsonb),
    pay.add_routing_rule(text, text, text, integer, bigint, bigint, integer),
    pay.route(text, bigint, text), pay.set_rate_limit(text, numeric, integer),
    pay.set_routing_rule_reroute(bigint, boolean),
    pay.bind_merchant_role(regrole, text), pay.unbind_merchant_role(regrole, text),
    pay.mark_paid(bigint, text, bigint, text),
    pay.open_account(text, text, boolean, integer), pay.post(text, jsonb), pay.balance(text),
    pay.expire_orders(timestamptz, integer), pay.purge_idempotency_keys(interval, integer),
    pay.idempotency_retention(),
    pay.parse_amount(text, text), pay.format_amount(bigint, text), pay.parse_form(text)
  TO pay_admin;
GRANT SELECT ON pay.currencies, pay.merchants, pay.gateways, pay.routing_rules, pay.rate_limits,
    pay.order_statuses, pay.order_transitions, pay.orders, pay.order_events, pay.refunds,
    pay.idempotency_keys, pay.accounts, pay.account_balances, pay.postings, pay.entries,
    pay.ledger_problems, pay.order_ledger_mismatches, pay.merchant_roles
  TO pay_admin;

-- pay_readonly: DBAs' reconciliation queries; granted by 99_readonly.sql,
-- the last fragment, so that it covers every table.
-- Backups and the extension's lifecycle.
--
-- pg_dump keeps the rows of an extension's tables only when the install
-- script marks them (pg_extension_config_dump); everything else is part of
-- the extension and comes back from CREATE EXTENSION pay.  Every table that
-- holds data is marked, with its identity sequence (or ids would restart
-- at 1).  Not marked: pay.outbox_backlog, whose counts the outbox triggers
-- rebuild while the outbox rows are restored (same total, other slots), and
-- pay.seed_rows below.
--
-- A restore COPYs the rows into the tables CREATE EXTENSION made, with every
-- trigger live: the triggers tell a superuser's COPY from other writes
-- (src/restore.c) and let a restored order keep its status; every other
-- rule applies to restored rows as to new ones, and all of them guard again
-- once the restore is over.
--
-- The tables the install script seeds (currencies, order statuses and
-- transitions) are dumped only with the rows a user added or changed:
-- CREATE EXTENSION seeds the rest again.  A changed seeded row comes back
-- over the seed (pay._restore_seeded_row).

-- The seeded rows as the install script wrote them, each table's row as text.
CREATE TABLE pay.seed_rows (
    table_name  text NOT NULL,
    row_text    text NOT NULL,
    PRIMARY KEY (table_name, row_text)
);
COMMENT ON TABLE pay.seed_rows IS
  'the rows the install script seeded, as text: pg_dump keeps only the rows of pay.currencies, pay.order_statuses and pay.order_transitions that are not among them';
INSERT INTO pay.seed_rows
  SELECT 'currencies', c::text FROM pay.currencies c
  UNION ALL SELECT 'order_statuses', s::text FROM pay.order_statuses s
  UNION ALL SELECT 'order_transitions', t::text FROM pay.order_transitions t;

CREATE FUNCTION pay._restoring() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_restoring' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pay._restoring() IS
  'true while a superuser''s COPY FROM writes rows: a restore (src/restore.c)';

-- A restored row of a seeded table whose key CREATE EXTENSION already
-- seeded replaces the seeded row's values instead of failing on the key.
CREATE FUNCTION pay._restore_seeded_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT pay._restoring() THEN
    RETURN NEW;
  END IF;
  CASE TG_TABLE_NAME
    WHEN 'currencies' THEN
      UPDATE pay.currencies c SET numeric_code = NEW.numeric_code, name = NEW.name
       WHERE c.code = NEW.code;
    WHEN 'order_statuses' THEN
      UPDATE pay.order_statuses s SET terminal = NEW.terminal WHERE s.status = NEW.status;
    WHEN 'order_transitions' THEN
      UPDATE pay.order_transitions t SET description = NEW.description
       WHERE t.from_status = NEW.from_status AND t.to_status = NEW.to_status;
  END CASE;
  RETURN CASE WHEN FOUND THEN NULL ELSE NEW END;
END $$;
CREATE TRIGGER currencies_restore BEFORE INSERT ON pay.currencies
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
CREATE TRIGGER order_statuses_restore BEFORE INSERT ON pay.order_statuses
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
CREATE TRIGGER order_transitions_restore BEFORE INSERT ON pay.order_transitions
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
ALTER TABLE pay.currencies ENABLE ALWAYS TRIGGER currencies_restore;
ALTER TABLE pay.order_statuses ENABLE ALWAYS TRIGGER order_statuses_restore;
ALTER TABLE pay.order_transitions ENABLE ALWAYS TRIGGER order_transitions_restore;

-- Mark every table of schema pay that holds data, and every sequence.  A
-- new table is covered without a new line here; the upgrade scripts run
-- this function again.
CREATE FUNCTION pay._mark_dumped_tables() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel, c.relname, c.relkind
      FROM pg_class c
     WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind IN ('r', 'S')
       AND c.relname NOT IN ('outbox_backlog', 'seed_rows')
     ORDER BY c.relname
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(r.rel,
      CASE WHEN r.relname IN ('currencies', 'order_statuses', 'order_transitions')
           THEN format('WHERE NOT EXISTS (SELECT FROM pay.seed_rows s WHERE s.table_name = %L AND s.row_text = %I::text)',
                       r.relname, r.relname)
           ELSE '' END);
  END LOOP;
END $$;
COMMENT ON FUNCTION pay._mark_dumped_tables() IS
  'marks every table and sequence of schema pay for pg_dump (the seeded tables: only rows users added or changed); run by the install and upgrade scripts';
SELECT pay._mark_dumped_tables();

-- DROP EXTENSION pay refuses while the ledger holds data (src/drop_guard.c).
CREATE FUNCTION pay._drop_guard() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pay_drop_guard' LANGUAGE C;
CREATE EVENT TRIGGER pay_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION pay._drop_guard();
COMMENT ON FUNCTION pay._drop_guard() IS
  'refuses DROP EXTENSION pay and DROP SCHEMA pay while pay.orders or pay.postings has rows, unless pay.confirm_drop_ledger is on';

REVOKE ALL ON pay.seed_rows FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pay._restoring(), pay._restore_seeded_row(), pay._mark_dumped_tables(),
    pay._drop_guard() FROM PUBLIC;
-- pay_readonly: DBAs' reconciliation queries.  Every table and view of
-- schema pay, read only, except the secret store's contents (pay.secret_list
-- shows which secrets exist).  The last fragment, so a table added by any
-- fragment is covered without a line here; an upgrade script runs these
-- statements again.
GRANT SELECT ON ALL TABLES IN SCHEMA pay TO pay_readonly;
REVOKE SELECT ON pay.secrets, pay.master_keys FROM pay_readonly;
-- pay.dispatcher is a view over this function: its reader needs to execute it.
GRANT EXECUTE ON FUNCTION pay.dispatcher_status() TO pay_readonly;
