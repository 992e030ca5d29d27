/*
 * lookup_cache.h — cached reference rows (lookup_cache.c).
 */
#ifndef LOOKUP_CACHE_H
#define LOOKUP_CACHE_H

#define MERCHANT_CODE_MAX	64	/* pay.merchants.code CHECK */
#define ACCOUNT_CODE_MAX	128 /* pay.accounts.code CHECK */

typedef struct AccountInfo
{
	int64		id;				/* key of the by-id cache */
	char		code[ACCOUNT_CODE_MAX + 1];
	char		currency[4];
	bool		non_negative;
	int16		slots;
} AccountInfo;

extern void LookupCacheInit(void);

/* false when there is no such currency (code NULL or not 3 bytes included) */
extern bool LookupCurrencyExponent(const char *code, int16 *exponent);

/* false when there is no such merchant */
extern bool LookupMerchantId(const char *code, int64 *id);

/* the merchant's code (palloc'd); an error if there is no such merchant */
extern char *LookupMerchantCode(int64 id);

/* does the merchant take notifications (has a notify_url)? */
extern bool LookupMerchantNotified(int64 id);

/* the merchant's notify_url (palloc'd), NULL when it has none; an error if there is no such merchant */
extern char *LookupMerchantNotifyUrl(int64 id);

/* false when there is no such account */
extern bool LookupAccount(int64 id, AccountInfo *out);

/* the account with this code, opened (with 8 slots) on first use */
extern int64 LookupOrOpenAccount(const char *code, const char *currency);

#endif							/* LOOKUP_CACHE_H */
