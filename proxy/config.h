/* config.h — pay-proxy settings from command-line flags and PAY_PROXY_* environment variables */
#ifndef PAY_PROXY_CONFIG_H
#define PAY_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

typedef struct ProxyConfig
{
	const char *dsn;			/* libpq connection string */
	const char *listen;			/* host:port, [v6addr]:port */
	long		pool_size;		/* database connections, at most */
	long		pool_wait_ms;	/* how long a request waits for a free connection */
	long		connect_timeout_ms; /* one attempt to open a database connection */
	long		statement_timeout_ms;	/* PostgreSQL statement_timeout of every call */
	long		request_timeout_ms; /* whole request: body upload, pool wait, SQL */
	long		header_timeout_ms;	/* request headers complete, from accept (or the previous request) */
	long		shutdown_timeout_ms;	/* how long SIGTERM waits for requests in flight */
	long		max_body_bytes; /* larger bodies are answered 413 */
	long		max_connections;	/* concurrent HTTP connections */
	long		max_connections_per_client; /* concurrent HTTP connections from one IP address */
	long		client_rate;	/* requests per second from one IP address; 0: no limit */
	long		client_burst;	/* bucket size of client_rate */
	const char *tls_cert;		/* PEM certificate chain file; TLS when set */
	const char *tls_key;		/* PEM private key file */
	const char *log_format;		/* text (logfmt) or json */
	const char *otlp_endpoint;	/* OTLP/HTTP traces URL; NULL: no span export */
} ProxyConfig;

typedef enum ConfigResult
{
	CONFIG_OK,
	CONFIG_EXIT_SUCCESS,		/* --help or --version was printed */
	CONFIG_ERROR				/* a message was printed to stderr */
} ConfigResult;

/* Fill cfg from defaults, then the environment, then argv */
ConfigResult ConfigLoad(ProxyConfig *cfg, int argc, char **argv);

/* Print --help */
void		ConfigUsage(FILE *out);

/* Resolve cfg->listen into a socket address; false with a message on stderr if invalid */
bool		ConfigResolveListen(const ProxyConfig *cfg, struct sockaddr_storage *addr,
								socklen_t *addr_len);

#endif
