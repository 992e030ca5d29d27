/*
 * pay.h — what the PostgreSQL-facing modules of pay share.
 */
#ifndef PAY_H
#define PAY_H

/* SQLSTATEs of doc/api.md, "Errors" */
#define ERRCODE_PAY_ILLEGAL_TRANSITION	MAKE_SQLSTATE('P','Y','0','0','1')
#define ERRCODE_PAY_IDEMPOTENCY_MISMATCH MAKE_SQLSTATE('P','Y','0','0','2')
#define ERRCODE_PAY_INSUFFICIENT_FUNDS	MAKE_SQLSTATE('P','Y','0','0','3')
#define ERRCODE_PAY_UNBALANCED			MAKE_SQLSTATE('P','Y','0','0','4')
#define ERRCODE_PAY_REFUND_EXCEEDS		MAKE_SQLSTATE('P','Y','0','0','5')
#define ERRCODE_PAY_SIGNATURE_INVALID	MAKE_SQLSTATE('P','Y','0','1','0')
#define ERRCODE_PAY_TIMESTAMP_WINDOW	MAKE_SQLSTATE('P','Y','0','1','1')
#define ERRCODE_PAY_NONCE_REUSED		MAKE_SQLSTATE('P','Y','0','1','2')
#define ERRCODE_PAY_RATE_LIMITED		MAKE_SQLSTATE('P','Y','0','2','9')

/* restore.c: a superuser's COPY FROM is writing rows (a restore) */
extern bool RestoringRows(void);

/* merchant_binding.c */
extern void MerchantBindingInit(void);

/* drop_guard.c */
extern void DropGuardInit(void);

/* order_state.c */
extern void OrderStateInit(void);

/* spi_plans.c: a statement prepared once per backend and kept in *slot */
extern struct _SPI_plan *KeptPlan(struct _SPI_plan **slot, const char *sql, int nargs, Oid *types);
extern struct _SPI_plan *KeptGenericPlan(struct _SPI_plan **slot, const char *sql, int nargs, Oid *types);

/*
 * cache_abort.c: a per-backend cache registers a guard (from _PG_init);
 * it sets added when it adds an entry, and reset (which must clear added)
 * runs when a (sub)transaction rolls back after an addition.
 */
typedef struct CacheAbortGuard
{
	bool		added;
	void		(*reset) (void);
} CacheAbortGuard;

extern void CacheAbortGuardRegister(CacheAbortGuard *guard);

/* http_headers.c: a jsonb value as the text ->> gives, in place (null stays null) */
struct JsonbValue;
extern void JsonbValueAsText(struct JsonbValue *v);
/* http_headers.c: "Name: value\r\n" header lines as a jsonb object with lower-case names */
extern Datum HeaderLinesJsonb(const char *lines);

/* order_route.c: the gateway of a new order (see there) */
struct FunctionCallInfoBaseData;
extern void OrderRouteInit(void);
extern void RouteOrder(const char *asked, int64 merchant_id, const char *currency, int64 amount,
					   const char *order_no, char **gateway, int64 *rule_id);
extern Datum RouteResult(struct FunctionCallInfoBaseData *fcinfo, const char *gateway, int64 rule_id);

/* rate_limit.c: one token of the merchant's bucket, or PY029 */
extern void RateLimitInit(void);
extern void RateLimitTake(int64 merchant_id, const char *code);

struct ArrayType;

/* ledger_post.c: a balanced posting; accounts and amounts are int8[] -> the posting's id */
extern int64 LedgerPost(const char *ref, Datum order_id, bool order_null,
						struct ArrayType *accounts, struct ArrayType *amounts);

/*
 * order_settle.c: settle an order's payment if it may take it — pending or
 * failed, routed to gateway (NULL: any), in currency (NULL: its own), for
 * exactly amount (or amount_major, a decimal in the order's currency) —
 * and book it.  false, and nothing written, if it may not.  Connected to
 * SPI; SPI_tuptable then holds the updated order row.
 */
typedef struct SettleRequest
{
	int64		order_id;
	const char *gateway;
	const char *currency;
	bool		has_amount;
	int64		amount;
	const char *amount_major;
	const char *psp_txn_id;
	const char *cause;
} SettleRequest;

extern bool SettleOrder(const SettleRequest *r);

/* ledger_slot.c */
extern int	BackendSlot(int slots);

/* idempotency.c */
extern void IdempotencyInit(void);

/* money.c */
extern void MoneyInit(void);
extern int64 AmountMax(int exponent);

/* secret_store.c */
extern void SecretStoreInit(void);

/* callback_record.c */
extern void CallbackRecordInit(void);

/* jobs_settings.c: pay.statement_fetch_hour */
extern void JobsInit(void);

/* dispatcher_shmem.c and the other dispatcher modules (dispatcher.h) */
extern void DispatcherInit(void);

/* next_action_wait.c: pay.wait_next_action's wake-ups, pay.checkout_wait */
extern void NextActionWaitInit(void);

#endif							/* PAY_H */
