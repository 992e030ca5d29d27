/*
 * main.c — pay-proxy: configuration, the MHD daemon, signals and graceful shutdown.
 *
 * MHD runs one thread per connection (bounded by --max-connections, and
 * by --max-connections-per-client for one address); each
 * request blocks its own thread while it waits for a pooled database
 * connection and its SQL call.  The main thread only waits for SIGTERM or
 * SIGINT: then it stops accepting, lets requests in flight finish (up to
 * --shutdown-timeout-ms; a second signal cuts the wait short) and exits 0.
 */
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "access_log.h"
#include "client_limit.h"
#include "clock.h"
#include "config.h"
#include "header_deadline.h"
#include "otlp_export.h"
#include "pool.h"
#include "request.h"
#include "tls.h"

#define DRAIN_POLL_MS 20

/* MHD's own messages go to our log */
static void
MhdLog(void *cls, const char *fmt, va_list ap)
{
	char		msg[1024];
	size_t		n;

	(void) cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	LogMessage("mhd", "%s", msg);
}

/* Wait for requests in flight to finish; true if they all did in time */
static bool
Drain(const sigset_t *signals, long timeout_ms)
{
	int64_t		deadline = ClockNowMs() + timeout_ms;

	while (RequestsInFlight() > 0)
	{
		struct timespec ts = {.tv_sec = 0,.tv_nsec = DRAIN_POLL_MS * 1000000L};

		if (ClockNowMs() >= deadline)
		{
			LogMessage("warning", "shutdown: %d requests still in flight after %ld ms; stopping anyway",
					   RequestsInFlight(), timeout_ms);
			return false;
		}
		if (sigtimedwait(signals, NULL, &ts) > 0)
		{
			LogMessage("warning", "shutdown: second signal; stopping with %d requests in flight",
					   RequestsInFlight());
			return false;
		}
	}
	return true;
}

/* Start the proxy, serve until SIGTERM/SIGINT, drain, exit 0 (1 if requests were cut off, 2 on bad flags) */
int
main(int argc, char **argv)
{
	ProxyConfig cfg;
	PoolSettings pool;
	struct sockaddr_storage addr;
	socklen_t	addr_len;
	sigset_t	signals;
	struct MHD_Daemon *daemon;
	struct MHD_OptionItem tls_options[4];
	char	   *cert = NULL;
	char	   *key = NULL;
	unsigned int flags;
	unsigned int idle_timeout_s;
	const union MHD_DaemonInfo *info;
	MHD_socket	listen_socket;
	int			sig = 0;
	bool		drained;

	switch (ConfigLoad(&cfg, argc, argv))
	{
		case CONFIG_OK:
			break;
		case CONFIG_EXIT_SUCCESS:
			return 0;
		case CONFIG_ERROR:
			return 2;
	}
	if (!ConfigResolveListen(&cfg, &addr, &addr_len))
		return 2;
	if (!AccessLogSetFormat(cfg.log_format))
	{
		fprintf(stderr, "pay-proxy: invalid value for --log-format: \"%s\" (text or json)\n", cfg.log_format);
		return 2;
	}

	/* Signals are taken synchronously by the main thread; every thread inherits the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);

	pool.dsn = cfg.dsn;
	pool.size = (int) cfg.pool_size;
	pool.wait_ms = cfg.pool_wait_ms;
	pool.connect_timeout_ms = cfg.connect_timeout_ms;
	pool.statement_timeout_ms = cfg.statement_timeout_ms;
	if (!PoolInit(&pool))
	{
		fprintf(stderr, "pay-proxy: out of memory\n");
		return 1;
	}
	RequestSetup((size_t) cfg.max_body_bytes, cfg.request_timeout_ms);
	ClientLimitSetup(cfg.client_rate, cfg.client_burst);
	if (!HeaderDeadlineStart(cfg.header_timeout_ms))
		return 1;
	if (cfg.otlp_endpoint != NULL && !OtlpExportStart(cfg.otlp_endpoint))
		return 1;

	memset(tls_options, 0, sizeof(tls_options));
	tls_options[0].option = MHD_OPTION_END;
	flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
		MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (cfg.tls_cert != NULL)
	{
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
		{
			fprintf(stderr, "pay-proxy: this libmicrohttpd was built without TLS support\n");
			return 2;
		}
		cert = TlsReadPem(cfg.tls_cert, "--tls-cert");
		key = cert ? TlsReadPem(cfg.tls_key, "--tls-key") : NULL;
		if (cert == NULL || key == NULL)
			return 2;
		flags |= MHD_USE_TLS;
		tls_options[0] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
		tls_options[1] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_KEY, 0, key};
		tls_options[2] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *) TLS_PRIORITIES};
		tls_options[3] = (struct MHD_OptionItem) {MHD_OPTION_END, 0, NULL};
	}
	idle_timeout_s = (unsigned int) ((cfg.request_timeout_ms + 999) / 1000);

	daemon = MHD_start_daemon(flags, 0, NULL, NULL, RequestHandle, NULL,
							  MHD_OPTION_EXTERNAL_LOGGER, MhdLog, NULL,
							  MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
							  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) cfg.max_connections,
							  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) cfg.max_connections_per_client,
							  MHD_OPTION_NOTIFY_CONNECTION, HeaderDeadlineNotify, NULL,
							  MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s,
							  MHD_OPTION_NOTIFY_COMPLETED, RequestCompleted, NULL,
							  MHD_OPTION_UNESCAPE_CALLBACK, RequestUnescape, NULL,
							  MHD_OPTION_ARRAY, tls_options,
							  MHD_OPTION_END);
	if (daemon == NULL)
	{
		fprintf(stderr, "pay-proxy: cannot start the HTTP server on %s%s\n", cfg.listen,
				cfg.tls_cert ? " (check the TLS certificate and key)" : "");
		HeaderDeadlineStop();
		OtlpExportStop();
		TlsFreePem(cert);
		TlsFreePem(key);
		return 1;
	}
	info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
	LogMessage("info", "pay-proxy listening on %s (port %u, %s) pool_size=%ld statement_timeout_ms=%ld "
			   "request_timeout_ms=%ld header_timeout_ms=%ld max_body_bytes=%ld "
			   "max_connections=%ld max_connections_per_client=%ld client_rate=%ld client_burst=%ld",
			   cfg.listen, info ? (unsigned) info->port : 0u, cfg.tls_cert ? "https" : "http",
			   cfg.pool_size, cfg.statement_timeout_ms, cfg.request_timeout_ms, cfg.header_timeout_ms,
			   cfg.max_body_bytes, cfg.max_connections, cfg.max_connections_per_client,
			   cfg.client_rate, cfg.client_burst);

	while (sigwait(&signals, &sig) != 0)
		;
	LogMessage("info", "received %s: no new connections, finishing %d requests in flight",
			   sig == SIGTERM ? "SIGTERM" : "SIGINT", RequestsInFlight());
	RequestsStartDraining();
	listen_socket = MHD_quiesce_daemon(daemon);
	/*
	 * MHD no longer accepts, but the kernel still would (into the backlog):
	 * shut the listening socket down so that new clients are refused at once.
	 * It is closed only after MHD_stop_daemon, as MHD requires.
	 */
	if (listen_socket != MHD_INVALID_SOCKET)
		shutdown(listen_socket, SHUT_RDWR);
	drained = Drain(&signals, cfg.shutdown_timeout_ms);
	MHD_stop_daemon(daemon);
	HeaderDeadlineStop();
	OtlpExportStop();
	if (listen_socket != MHD_INVALID_SOCKET)
		close(listen_socket);
	PoolClose();
	TlsFreePem(cert);
	TlsFreePem(key);
	LogMessage("info", "pay-proxy stopped%s", drained ? "" : " (requests were cut off)");
	return drained ? 0 : 1;
}
