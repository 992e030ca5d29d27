-- Merchants, payment gateways and routing.

CREATE TABLE pay.merchants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    notify_url  text CHECK (notify_url ~ '^https?://'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.merchants IS 'merchants that own orders; code is the public identifier';

-- The payment providers pay knows (src/provider_registry.c), in that
-- order; with a feature (callbacks, creates_payments, needs_base_url,
-- refunds, statements, manual_capture, close_needs_psp_id) only those that
-- have it.
CREATE FUNCTION pay._provider_kinds(feature text DEFAULT NULL) RETURNS text[]
    AS 'MODULE_PATHNAME', 'pay_provider_kinds' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay._provider_kinds(text) IS
  'the gateway kinds of the provider registry, or those with the feature';

-- Is there a provider of this kind?  The CHECK on pay.gateways.kind asks
-- the registry, so that it is the one list of kinds.
CREATE FUNCTION pay._provider_kind_known(kind text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_provider_kind_known' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._provider_kind_known(text) IS
  'true if the provider registry has a provider of this gateway kind (the CHECK on pay.gateways.kind)';

-- The kinds whose provider sends a request of this operation (the janitor's
-- query and query_refund, the expiry job's close).
CREATE FUNCTION pay._provider_operation_kinds(operation text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'pay_provider_operation_kinds' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._provider_operation_kinds(text) IS
  'the gateway kinds whose provider sends requests of this operation';

-- How long a provider keeps an authorization capturable; NULL without
-- manual capture.  A gateway's option authorization_days overrides it.
CREATE FUNCTION pay._provider_authorization_window(kind text) RETURNS interval
    AS 'MODULE_PATHNAME', 'pay_provider_authorization_window' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._provider_authorization_window(text) IS
  'how long the provider of this gateway kind keeps an authorization capturable (NULL without manual capture)';

CREATE TABLE pay.gateways (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    kind        text NOT NULL CHECK (pay._provider_kind_known(kind)),
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
