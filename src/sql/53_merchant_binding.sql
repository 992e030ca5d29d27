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
