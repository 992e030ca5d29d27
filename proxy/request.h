/* request.h — the MHD access handler: request state, bounded body, deadline, draining */
#ifndef PAY_PROXY_REQUEST_H
#define PAY_PROXY_REQUEST_H

#include <stddef.h>

#include <microhttpd.h>

/* Remember the limits every request obeys */
void		RequestSetup(size_t max_body_bytes, long request_timeout_ms);

/* MHD_AccessHandlerCallback for every request */
enum MHD_Result RequestHandle(void *cls, struct MHD_Connection *connection,
							  const char *url, const char *method, const char *version,
							  const char *upload_data, size_t *upload_data_size,
							  void **con_cls);

/* MHD_RequestCompletedCallback: write the access-log line and free the request */
void		RequestCompleted(void *cls, struct MHD_Connection *connection,
							 void **con_cls, enum MHD_RequestTerminationCode toe);

/* MHD unescape callback: decode %HH, except %00, which stays as is (and fails path checks) */
size_t		RequestUnescape(void *cls, struct MHD_Connection *connection, char *s);

/* Requests the handler has seen and MHD has not yet completed */
int			RequestsInFlight(void);

/* From now on answer new requests 503 with Connection: close */
void		RequestsStartDraining(void);

#endif
