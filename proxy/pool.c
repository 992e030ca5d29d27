/*
 * pool.c — a bounded pool of libpq connections.
 *
 * At most `size` connections, opened lazily.  A request waits up to wait_ms
 * (and never past its own deadline) for a free one.  Every call is sent
 * asynchronously and waited for with poll(), so a stuck database cannot hold
 * a request past its deadline: on expiry the statement is cancelled, and the
 * connection dropped if it does not come back.  A connection that broke
 * while idle (server restart) is noticed before use and reopened; one that
 * breaks during a call is dropped and reopened by the next request.
 */
#include "pool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access_log.h"
#include "clock.h"

#define CANCEL_GRACE_MS 1000	/* wait for a cancelled statement to come back */

typedef struct PoolSlot
{
	PGconn	   *conn;			/* NULL until opened, and after it broke */
	bool		busy;
} PoolSlot;

typedef enum ExecStatus
{
	EXEC_OK,					/* result set (rows or SQL error); connection usable */
	EXEC_BROKEN,				/* connection lost: drop it */
	EXEC_TIMEOUT				/* deadline passed; *keep says if the connection is usable */
} ExecStatus;

static PoolSettings settings;
static PoolSlot *slots;
static bool closed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed;

/* Set the pool up (no connection is opened yet); false if out of memory */
bool
PoolInit(const PoolSettings *s)
{
	pthread_condattr_t attr;

	settings = *s;
	slots = calloc((size_t) s->size, sizeof(PoolSlot));
	if (slots == NULL)
		return false;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&freed, &attr);
	pthread_condattr_destroy(&attr);
	return true;
}

/* libpq's multi-line message as one line: newlines and tabs become spaces, trailing ones dropped */
static const char *
OneLine(const char *msg, char *buf, size_t size)
{
	size_t		n = 0;

	for (; *msg && n + 1 < size; msg++)
		buf[n++] = (*msg == '\n' || *msg == '\t') ? ' ' : *msg;
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
	return buf;
}

/* Notices from the server (RAISE NOTICE, warnings) go to our log, not raw to stderr */
static void
NoticeToLog(void *arg, const char *message)
{
	char		buf[512];

	(void) arg;
	LogMessage("notice", "database: %s", OneLine(message, buf, sizeof(buf)));
}

/* Wait until fd is ready for events or deadline_ms passes: >0 ready, 0 timeout, <0 error */
static int
WaitSocket(int fd, short events, int64_t deadline_ms)
{
	for (;;)
	{
		struct pollfd p = {.fd = fd,.events = events};
		int64_t		left = deadline_ms - ClockNowMs();
		int			rc;

		if (fd < 0)
			return -1;
		if (left <= 0)
			return 0;
		rc = poll(&p, 1, left > 60000 ? 60000 : (int) left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* Read results until the connection is idle again; false if it broke or time ran out */
static bool
CollectResults(PGconn *conn, int64_t deadline_ms, PGresult **first)
{
	for (;;)
	{
		PGresult   *r;

		while (PQisBusy(conn))
		{
			int			rc = WaitSocket(PQsocket(conn), POLLIN, deadline_ms);

			if (rc <= 0)
				return false;
			if (!PQconsumeInput(conn))
				return false;
		}
		r = PQgetResult(conn);
		if (r == NULL)
			return true;
		if (*first == NULL)
			*first = r;
		else
			PQclear(r);
	}
}

/* Send one statement and wait for its result before deadline_ms */
static ExecStatus
ExecDeadline(PGconn *conn, const char *sql, int nparams, const char *const *values,
			 int64_t deadline_ms, PGresult **result, bool *keep)
{
	PGresult   *first = NULL;

	*result = NULL;
	*keep = false;
	if (!PQsendQueryParams(conn, sql, nparams, NULL, values, NULL, NULL, 0))
		return EXEC_BROKEN;
	for (;;)
	{
		int			rc = PQflush(conn);

		if (rc < 0)
			return EXEC_BROKEN;
		if (rc == 0)
			break;
		rc = WaitSocket(PQsocket(conn), POLLIN | POLLOUT, deadline_ms);
		if (rc < 0)
			return EXEC_BROKEN;
		if (rc == 0)
			return EXEC_TIMEOUT;	/* half-sent: the connection cannot be reused */
		if (!PQconsumeInput(conn))
			return EXEC_BROKEN;
	}
	if (CollectResults(conn, deadline_ms, &first))
	{
		*result = first;
		return EXEC_OK;
	}
	if (PQstatus(conn) == CONNECTION_BAD || ClockNowMs() < deadline_ms)
	{
		PQclear(first);
		return EXEC_BROKEN;
	}

	/* Deadline: ask the server to cancel, then give it a moment to answer. */
	{
		PGcancel   *cancel = PQgetCancel(conn);
		char		errbuf[256];

		if (cancel != NULL)
		{
			PQcancel(cancel, errbuf, sizeof(errbuf));
			PQfreeCancel(cancel);
			*keep = CollectResults(conn, ClockNowMs() + CANCEL_GRACE_MS, &first);
		}
	}
	PQclear(first);
	return EXEC_TIMEOUT;
}

/* Open a connection for a slot, with statement_timeout set; NULL (logged) on failure */
static PGconn *
Connect(int64_t deadline_ms)
{
	static const char *const keys[] = {
		"dbname", "fallback_application_name", "client_encoding", NULL
	};
	const char *values[] = {settings.dsn, "pay-proxy", "UTF8", NULL};
	PGconn	   *conn;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	char		timeout[32];
	const char *params[1];
	PGresult   *res = NULL;
	bool		keep;

	conn = PQconnectStartParams(keys, values, 1);
	if (conn == NULL)
	{
		LogMessage("error", "database connection failed: out of memory");
		return NULL;
	}
	if (PQstatus(conn) == CONNECTION_BAD)
		st = PGRES_POLLING_FAILED;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED)
	{
		int			rc = WaitSocket(PQsocket(conn),
									st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
									deadline_ms);

		if (rc == 0)
		{
			LogMessage("error", "database connection failed: timed out");
			PQfinish(conn);
			return NULL;
		}
		if (rc < 0)
			break;
		st = PQconnectPoll(conn);
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		char		buf[512];

		LogMessage("error", "database connection failed: %s",
				   OneLine(PQerrorMessage(conn), buf, sizeof(buf)));
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, NoticeToLog, NULL);
	if (PQsetnonblocking(conn, 1) != 0)
	{
		PQfinish(conn);
		return NULL;
	}

	snprintf(timeout, sizeof(timeout), "%ld", settings.statement_timeout_ms);
	params[0] = timeout;
	if (ExecDeadline(conn, "SELECT pg_catalog.set_config('statement_timeout', $1, false)",
					 1, params, deadline_ms, &res, &keep) != EXEC_OK ||
		PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char		buf[512];

		LogMessage("error", "database connection setup failed: %s",
				   OneLine(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), buf, sizeof(buf)));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

/*
 * True if an idle connection still looks alive.  An idle backend has nothing
 * to say (we never LISTEN or SET while idle), so anything readable means a
 * termination message or EOF: the server restarted or dropped us.
 */
static bool
IdleConnectionAlive(PGconn *conn)
{
	struct pollfd p = {.fd = PQsocket(conn),.events = POLLIN};
	int			rc;

	if (PQstatus(conn) != CONNECTION_OK || p.fd < 0)
		return false;
	do
		rc = poll(&p, 1, 0);
	while (rc < 0 && errno == EINTR);
	return rc == 0;
}

/* Take a free slot, waiting until wait_deadline_ms; NULL if none became free */
static PoolSlot *
Acquire(int64_t wait_deadline_ms)
{
	PoolSlot   *slot = NULL;
	struct timespec ts;

	ts.tv_sec = wait_deadline_ms / 1000;
	ts.tv_nsec = (wait_deadline_ms % 1000) * 1000000;

	pthread_mutex_lock(&lock);
	for (;;)
	{
		if (closed)
			break;
		/* Prefer a slot with an open connection, then an empty one. */
		for (int i = 0; i < settings.size && slot == NULL; i++)
			if (!slots[i].busy && slots[i].conn != NULL)
				slot = &slots[i];
		for (int i = 0; i < settings.size && slot == NULL; i++)
			if (!slots[i].busy)
				slot = &slots[i];
		if (slot != NULL)
		{
			slot->busy = true;
			break;
		}
		if (pthread_cond_timedwait(&freed, &lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&lock);
	return slot;
}

/* Give a slot back; drop its connection unless keep_conn */
static void
Release(PoolSlot *slot, bool keep_conn)
{
	PGconn	   *drop = NULL;

	if (!keep_conn || (slot->conn && PQtransactionStatus(slot->conn) != PQTRANS_IDLE))
	{
		drop = slot->conn;
		slot->conn = NULL;
	}
	if (drop != NULL)
		PQfinish(drop);
	pthread_mutex_lock(&lock);
	slot->busy = false;
	pthread_cond_signal(&freed);
	pthread_mutex_unlock(&lock);
}

/* Run one parameterized statement (text parameters and results) before deadline_ms (ClockNowMs) */
PoolStatus
PoolQuery(const char *sql, int nparams, const char *const *values,
		  int64_t deadline_ms, PGresult **result)
{
	int64_t		now = ClockNowMs();
	int64_t		wait_deadline = now + settings.wait_ms;
	int64_t		connect_deadline;
	PoolSlot   *slot;
	ExecStatus	st;
	bool		keep;

	*result = NULL;
	slot = Acquire(wait_deadline < deadline_ms ? wait_deadline : deadline_ms);
	if (slot == NULL)
		return POOL_BUSY;

	if (slot->conn != NULL && !IdleConnectionAlive(slot->conn))
	{
		LogMessage("info", "database connection closed by the server while idle; reconnecting");
		PQfinish(slot->conn);
		slot->conn = NULL;
	}
	if (slot->conn == NULL)
	{
		now = ClockNowMs();
		connect_deadline = now + settings.connect_timeout_ms;
		if (connect_deadline > deadline_ms)
			connect_deadline = deadline_ms;
		slot->conn = Connect(connect_deadline);
		if (slot->conn == NULL)
		{
			Release(slot, false);
			return ClockNowMs() >= deadline_ms ? POOL_TIMEOUT : POOL_UNAVAILABLE;
		}
	}

	st = ExecDeadline(slot->conn, sql, nparams, values, deadline_ms, result, &keep);
	if (st == EXEC_TIMEOUT)
	{
		Release(slot, keep);
		return POOL_TIMEOUT;
	}
	if (st == EXEC_BROKEN || PQstatus(slot->conn) != CONNECTION_OK)
	{
		char		buf[512];

		LogMessage("error", "database connection lost: %s",
				   OneLine(PQerrorMessage(slot->conn), buf, sizeof(buf)));
		PQclear(*result);
		*result = NULL;
		Release(slot, false);
		return POOL_UNAVAILABLE;
	}
	Release(slot, true);
	return POOL_OK;
}

/* Close every idle connection and refuse further queries */
void
PoolClose(void)
{
	pthread_mutex_lock(&lock);
	closed = true;
	for (int i = 0; i < settings.size; i++)
	{
		if (!slots[i].busy && slots[i].conn != NULL)
		{
			PQfinish(slots[i].conn);
			slots[i].conn = NULL;
		}
	}
	pthread_cond_broadcast(&freed);
	pthread_mutex_unlock(&lock);
}
