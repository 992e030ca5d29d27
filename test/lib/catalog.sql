-- Every object of the extension pay in this database, one line each,
-- without OIDs: what an installation upgraded with ALTER EXTENSION pay
-- UPDATE must have exactly as a fresh one (test/t/061_upgrade.pl compares
-- the two).  Function bodies are compared by digest; columns by their
-- order among the live columns (ADD COLUMN appends, so a fresh install
-- must define a new column last too: functions return these row types).
WITH ext AS (
  SELECT oid, extversion, extconfig, extcondition FROM pg_catalog.pg_extension WHERE extname = 'pay'
), lines(kind, ident, detail) AS (
  SELECT 'extension', 'pay', concat_ws(' | ', e.extversion,
           (SELECT string_agg(c::regclass::text || ' ' || coalesce(e.extcondition[i], ''), ', ' ORDER BY c::regclass::text)
              FROM unnest(e.extconfig) WITH ORDINALITY u(c, i)))
    FROM ext e
  UNION ALL
  SELECT 'member', pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ''
    FROM pg_catalog.pg_depend d, ext
   WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
  UNION ALL
  SELECT 'schema', n.nspname, concat_ws(' | ', n.nspacl::text, pg_catalog.obj_description(n.oid, 'pg_namespace'))
    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pay'
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text,
         concat_ws(' | ', p.prokind, pg_catalog.pg_get_function_arguments(p.oid),
                   pg_catalog.pg_get_function_result(p.oid), l.lanname, p.provolatile, p.proparallel,
                   p.prosecdef, p.proisstrict, p.proleakproof, p.procost, p.prorows, p.proconfig::text,
                   p.probin, pg_catalog.md5(p.prosrc), p.proacl::text,
                   pg_catalog.obj_description(p.oid, 'pg_proc'))
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
   WHERE p.pronamespace = 'pay'::regnamespace
  UNION ALL
  SELECT 'relation', c.oid::regclass::text,
         concat_ws(' | ', c.relkind, c.relpersistence, c.reloptions::text, c.relacl::text,
                   c.relrowsecurity, c.relforcerowsecurity, c.relreplident,
                   pg_catalog.obj_description(c.oid, 'pg_class'),
                   CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END)
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind NOT IN ('i', 'I')
  UNION ALL
  SELECT 'column', a.attrelid::regclass::text || '.' || a.attname,
         concat_ws(' | ', pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                   pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                   a.attgenerated, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attcollation::regcollation::text,
                   a.attacl::text, pg_catalog.col_description(a.attrelid, a.attnum))
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind IN ('r', 'v', 'c', 'm', 'p')
     AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint', co.conrelid::regclass::text || '.' || co.conname,
         concat_ws(' | ', co.contype, co.condeferrable, co.condeferred, co.convalidated,
                   pg_catalog.pg_get_constraintdef(co.oid))
    FROM pg_catalog.pg_constraint co
   WHERE co.connamespace = 'pay'::regnamespace
  UNION ALL
  SELECT 'index', i.indexrelid::regclass::text,
         concat_ws(' | ', pg_catalog.pg_get_indexdef(i.indexrelid), ic.reloptions::text)
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
   WHERE ic.relnamespace = 'pay'::regnamespace
  UNION ALL
  SELECT 'trigger', t.tgrelid::regclass::text || '.' || t.tgname,
         concat_ws(' | ', t.tgenabled, pg_catalog.pg_get_triggerdef(t.oid))
    FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = 'pay'::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'policy', po.schemaname || '.' || po.tablename || '.' || po.policyname,
         concat_ws(' | ', po.permissive, po.roles::text, po.cmd, po.qual, po.with_check)
    FROM pg_catalog.pg_policies po WHERE po.schemaname = 'pay'
  UNION ALL
  SELECT 'sequence', s.seqrelid::regclass::text,
         concat_ws(' | ', s.seqtypid::regtype::text, s.seqstart, s.seqincrement, s.seqmax, s.seqmin,
                   s.seqcache, s.seqcycle)
    FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
   WHERE c.relnamespace = 'pay'::regnamespace
  UNION ALL
  SELECT 'type', ty.oid::regtype::text,
         concat_ws(' | ', ty.typtype, ty.typacl::text, pg_catalog.obj_description(ty.oid, 'pg_type'))
    FROM pg_catalog.pg_type ty
   WHERE ty.typnamespace = 'pay'::regnamespace AND ty.typtype <> 'b'
  UNION ALL
  SELECT 'event trigger', et.evtname,
         concat_ws(' | ', et.evtevent, et.evtfoid::regprocedure::text, et.evtenabled, et.evttags::text)
    FROM pg_catalog.pg_event_trigger et
   WHERE et.evtfoid IN (SELECT oid FROM pg_catalog.pg_proc WHERE pronamespace = 'pay'::regnamespace)
  UNION ALL
  SELECT 'role', r.rolname, concat_ws(' | ', r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolbypassrls)
    FROM pg_catalog.pg_roles r WHERE r.rolname LIKE 'pay\_%'
  UNION ALL
  SELECT 'init privilege', pg_catalog.pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
         concat_ws(' | ', ip.privtype, ip.initprivs::text)
    FROM pg_catalog.pg_init_privs ip, ext
   WHERE EXISTS (SELECT FROM pg_catalog.pg_depend d
                  WHERE d.classid = ip.classoid AND d.objid = ip.objoid AND d.refobjid = ext.oid AND d.deptype = 'e')
)
SELECT kind || ' ' || ident || ': ' || detail FROM lines ORDER BY 1;
