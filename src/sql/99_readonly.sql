-- pay_readonly: DBAs' reconciliation queries.  Every table and view of
-- schema pay, read only, except the secret store's contents (pay.secret_list
-- shows which secrets exist).  The last fragment, so a table added by any
-- fragment is covered without a line here; an upgrade script runs these
-- statements again.
GRANT SELECT ON ALL TABLES IN SCHEMA pay TO pay_readonly;
REVOKE SELECT ON pay.secrets, pay.master_keys FROM pay_readonly;
-- pay.dispatcher is a view over this function: its reader needs to execute it.
GRANT EXECUTE ON FUNCTION pay.dispatcher_status() TO pay_readonly;
