/* header_deadline.h — close connections whose request headers do not arrive in time */
#ifndef PAY_PROXY_HEADER_DEADLINE_H
#define PAY_PROXY_HEADER_DEADLINE_H

#include <stdbool.h>

#include <microhttpd.h>

/* Start the thread that closes late connections; false (with a log line) if it cannot start */
bool		HeaderDeadlineStart(long timeout_ms);

/* Stop that thread; call after MHD_stop_daemon */
void		HeaderDeadlineStop(void);

/* MHD_NotifyConnectionCallback: watch a connection from accept until MHD closes it */
void		HeaderDeadlineNotify(void *cls, struct MHD_Connection *connection,
								 void **socket_context, enum MHD_ConnectionNotificationCode code);

/* The connection's request headers are complete: stop its clock */
void		HeaderDeadlineHeadersIn(struct MHD_Connection *connection);

/* The connection's request is done: its next request's headers get a new deadline */
void		HeaderDeadlineRequestDone(struct MHD_Connection *connection);

#endif
