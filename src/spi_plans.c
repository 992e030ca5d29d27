/*
 * spi_plans.c — statements that pay's C code runs again and again, prepared
 * once per backend and kept (SPI_keepplan) in a static pointer of the
 * caller's.  The caller is connected to SPI.
 */
#include "postgres.h"

#include "executor/spi.h"

#include "pay.h"

SPIPlanPtr
KeptPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/*
 * The same with a generic plan, planned once: for statements that have one
 * good plan whatever their parameters.  The dispatcher's session plans
 * custom plans by default (plan_cache_mode), and planning such a statement
 * again on every claim or record only costs CPU.
 */
SPIPlanPtr
KeptGenericPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}
