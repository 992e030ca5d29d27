/* tls.h — certificate and key files for HTTPS, TLS 1.2 minimum */
#ifndef PAY_PROXY_TLS_H
#define PAY_PROXY_TLS_H

#include <stddef.h>

/* GnuTLS priorities for MHD: no SSL 3.0, TLS 1.0 or TLS 1.1 */
#define TLS_PRIORITIES "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"

/* Read a PEM file into a NUL-terminated buffer; NULL with a message on stderr if unusable */
char	   *TlsReadPem(const char *path, const char *what);

/* Wipe and free a buffer from TlsReadPem */
void		TlsFreePem(char *pem);

#endif
