/*
 * outer_role.c — pay._outer_role(): the role a SECURITY DEFINER function
 * acts for.  Inside such a function current_user is the function's owner;
 * the caller is the role of the session's SET ROLE, else the session user
 * (what PostgreSQL calls the outer user).  The privilege checks of
 * open_account and the merchant binding ask about that role.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

PG_FUNCTION_INFO_V1(pay_outer_role);

/* pay._outer_role() -> oid */
Datum
pay_outer_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
