/* tls.c — certificate and key files for HTTPS (MHD with GnuTLS), TLS 1.2 minimum */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEM_MAX_BYTES (1024 * 1024)

/* Read a PEM file into a NUL-terminated buffer; NULL with a message on stderr if unusable */
char *
TlsReadPem(const char *path, const char *what)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	size_t		n;

	if (f == NULL)
	{
		fprintf(stderr, "pay-proxy: cannot open %s file \"%s\": %s\n", what, path, strerror(errno));
		return NULL;
	}
	buf = malloc(PEM_MAX_BYTES + 1);
	if (buf == NULL)
	{
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, PEM_MAX_BYTES + 1, f);
	buf[n > PEM_MAX_BYTES ? PEM_MAX_BYTES : n] = '\0';
	if (ferror(f) || n == 0 || n > PEM_MAX_BYTES || strlen(buf) != n ||
		strstr(buf, "-----BEGIN ") == NULL)
	{
		fprintf(stderr, "pay-proxy: %s file \"%s\" is not a PEM file of at most %d bytes\n",
				what, path, PEM_MAX_BYTES);
		fclose(f);
		TlsFreePem(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

/* Wipe and free a buffer from TlsReadPem */
void
TlsFreePem(char *pem)
{
	if (pem == NULL)
		return;
	explicit_bzero(pem, PEM_MAX_BYTES + 1);	/* every buffer comes from TlsReadPem */
	free(pem);
}
