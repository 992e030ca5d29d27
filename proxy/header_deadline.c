/*
 * header_deadline.c — close connections whose request headers do not arrive in time.
 *
 * The request deadline (request.c) starts when the headers are in, and MHD's
 * connection timeout is an idle timeout that every received byte resets, so
 * a client sending one header line now and then would hold a connection (and
 * its thread) forever; enough such clients lock everyone out.  Here every
 * connection is watched from accept: if its headers are not complete within
 * header_timeout_ms, a reaper thread shuts its socket down, and MHD, seeing
 * the end of the stream, closes the connection.  A kept-alive connection gets
 * a new deadline for its next request's headers when a request is done.
 *
 * The watch entry lives in MHD's per-connection socket_context.  MHD 0.9.75
 * calls MHD_CONNECTION_NOTIFY_STARTED before it starts the connection's
 * thread, and MHD_CONNECTION_NOTIFY_CLOSED before it closes the socket; the
 * entry is removed on CLOSED under the same mutex the reaper holds while it
 * calls shutdown(), so the reaper never touches a descriptor that has been
 * closed (and perhaps reused by another connection).
 */
#include "header_deadline.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "access_log.h"
#include "clock.h"
#include "peer.h"

#define REAP_INTERVAL_MIN_MS 10
#define REAP_INTERVAL_MAX_MS 250

typedef struct Watched
{
	struct Watched *prev;
	struct Watched *next;
	MHD_socket	fd;
	int64_t		deadline_ms;	/* 0 while a request is being served */
	int64_t		since_ms;		/* accept, or the end of the previous request */
	bool		shut;			/* shutdown() done; waiting for MHD to close */
	char		remote[PEER_ADDRESS_MAX];
} Watched;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t reaper;
static bool running;
static bool stopping;
static long timeout_ms;
static Watched *watched;		/* doubly linked, unordered */

/* Shut down every connection past its deadline; the caller holds the lock */
static void
ReapLate(int64_t now)
{
	for (Watched *w = watched; w != NULL; w = w->next)
	{
		if (w->shut || w->deadline_ms == 0 || now < w->deadline_ms)
			continue;
		/* MHD's thread sees end of stream and closes the connection as a client abort */
		shutdown(w->fd, SHUT_RDWR);
		w->shut = true;
		LogMessage("warning", "remote=%s request headers not complete after %ld ms; connection closed",
				   w->remote, (long) (now - w->since_ms));
	}
}

/* The reaper thread: wake every interval, close what is late */
static void *
ReaperMain(void *arg)
{
	long		interval = timeout_ms / 10;

	(void) arg;
	if (interval < REAP_INTERVAL_MIN_MS)
		interval = REAP_INTERVAL_MIN_MS;
	if (interval > REAP_INTERVAL_MAX_MS)
		interval = REAP_INTERVAL_MAX_MS;
	pthread_mutex_lock(&lock);
	while (!stopping)
	{
		struct timespec until;

		ReapLate(ClockNowMs());
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += interval * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&wake, &lock, &until);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Start the thread that closes late connections; false (with a log line) if it cannot start */
bool
HeaderDeadlineStart(long timeout)
{
	pthread_condattr_t attr;
	int			rc;

	timeout_ms = timeout;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wake, &attr);
	pthread_condattr_destroy(&attr);
	rc = pthread_create(&reaper, NULL, ReaperMain, NULL);
	if (rc != 0)
	{
		LogMessage("error", "cannot start the header deadline thread: %s", strerror(rc));
		return false;
	}
	running = true;
	return true;
}

/* Stop that thread; call after MHD_stop_daemon */
void
HeaderDeadlineStop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(reaper, NULL);
	running = false;
}

/* Begin watching a new connection */
static void
Watch(struct MHD_Connection *connection, void **socket_context)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
	Watched    *w;

	*socket_context = NULL;
	if (info == NULL)
		return;
	w = calloc(1, sizeof(Watched));
	if (w == NULL)
	{
		LogMessage("warning", "out of memory: a connection is served without a header deadline");
		return;
	}
	w->fd = info->connect_fd;
	w->since_ms = ClockNowMs();
	w->deadline_ms = w->since_ms + timeout_ms;
	PeerAddress(connection, w->remote, sizeof(w->remote));
	pthread_mutex_lock(&lock);
	w->next = watched;
	if (watched != NULL)
		watched->prev = w;
	watched = w;
	pthread_mutex_unlock(&lock);
	*socket_context = w;
}

/* Stop watching a connection MHD is about to close */
static void
Unwatch(void **socket_context)
{
	Watched    *w = *socket_context;

	if (w == NULL)
		return;
	pthread_mutex_lock(&lock);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		watched = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&lock);
	free(w);
	*socket_context = NULL;
}

/* MHD_NotifyConnectionCallback: watch a connection from accept until MHD closes it */
void
HeaderDeadlineNotify(void *cls, struct MHD_Connection *connection,
					 void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	(void) cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		Watch(connection, socket_context);
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		Unwatch(socket_context);
}

/* Set the deadline of the connection's watch entry (0: none) */
static void
SetDeadline(struct MHD_Connection *connection, bool arm)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	Watched    *w = info ? info->socket_context : NULL;

	if (w == NULL)
		return;
	pthread_mutex_lock(&lock);
	if (arm)
	{
		w->since_ms = ClockNowMs();
		w->deadline_ms = w->since_ms + timeout_ms;
	}
	else
		w->deadline_ms = 0;
	pthread_mutex_unlock(&lock);
}

/* The connection's request headers are complete: stop its clock */
void
HeaderDeadlineHeadersIn(struct MHD_Connection *connection)
{
	SetDeadline(connection, false);
}

/* The connection's request is done: its next request's headers get a new deadline */
void
HeaderDeadlineRequestDone(struct MHD_Connection *connection)
{
	SetDeadline(connection, true);
}
