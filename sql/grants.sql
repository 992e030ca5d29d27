-- Every grant on every object of schema pay (the schema, tables, views,
-- sequences, functions with their signatures) to PUBLIC and the four roles
-- of README.md "Roles", in a stable order: a new or lost grant shows up
-- here as a change of the expected output.  To regenerate after a change
-- of privileges, run this one query and review its output.
SET search_path = pg_catalog;
WITH objects (kind, object, acl, type, owner) AS (
  SELECT 'schema', n.nspname::text, n.nspacl, 'n'::"char", n.nspowner
    FROM pg_namespace n WHERE n.nspname = 'pay'
  UNION ALL
  SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' WHEN 'S' THEN 'sequence' ELSE 'table' END,
         c.oid::regclass::text, c.relacl, CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner
    FROM pg_class c
   WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text, p.proacl, 'f'::"char", p.proowner
    FROM pg_proc p WHERE p.pronamespace = 'pay'::regnamespace
)
SELECT o.kind, o.object,
       CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee,
       string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN ' (grantable)' ELSE '' END,
                  ', ' ORDER BY a.privilege_type) AS privileges
  FROM objects o, aclexplode(coalesce(o.acl, acldefault(o.type, o.owner))) a
 WHERE a.grantee = 0
    OR a.grantee IN (SELECT r.oid FROM pg_roles r
                      WHERE r.rolname IN ('pay_app', 'pay_callback', 'pay_admin', 'pay_readonly'))
 GROUP BY o.kind, o.object, a.grantee
 ORDER BY o.object, o.kind, 3;

-- The same, per role: how many objects each may use (a summary to read).
SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee,
       count(*) FILTER (WHERE a.privilege_type = 'EXECUTE') AS functions,
       count(*) FILTER (WHERE a.privilege_type = 'SELECT') AS readable,
       count(*) FILTER (WHERE a.privilege_type NOT IN ('EXECUTE', 'SELECT', 'USAGE')) AS writable
  FROM (SELECT p.proacl AS acl FROM pg_proc p WHERE p.pronamespace = 'pay'::regnamespace
        UNION ALL
        SELECT c.relacl FROM pg_class c WHERE c.relnamespace = 'pay'::regnamespace) o,
       aclexplode(o.acl) a
 WHERE a.grantee = 0
    OR a.grantee IN (SELECT r.oid FROM pg_roles r
                      WHERE r.rolname IN ('pay_app', 'pay_callback', 'pay_admin', 'pay_readonly'))
 GROUP BY 1 ORDER BY 1;
RESET search_path;
