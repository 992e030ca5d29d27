/* config.c — pay-proxy settings: defaults, PAY_PROXY_* environment variables, then flags */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#define PAY_PROXY_VERSION "0.1"

typedef enum OptionKind
{
	OPT_STRING,
	OPT_LONG,
	OPT_HELP,
	OPT_VERSION
} OptionKind;

typedef struct OptionSpec
{
	const char *flag;			/* --flag */
	const char *env;			/* environment variable, or NULL */
	OptionKind	kind;
	size_t		offset;			/* into ProxyConfig */
	long		min;
	long		max;
	const char *help;
} OptionSpec;

#define FIELD(f) offsetof(ProxyConfig, f)

static const OptionSpec options[] = {
	{"dsn", "PAY_PROXY_DSN", OPT_STRING, FIELD(dsn), 0, 0,
	"libpq connection string (default: libpq's PG* environment)"},
	{"listen", "PAY_PROXY_LISTEN", OPT_STRING, FIELD(listen), 0, 0,
	"address to listen on, host:port or [ipv6]:port (default 127.0.0.1:8080)"},
	{"pool-size", "PAY_PROXY_POOL_SIZE", OPT_LONG, FIELD(pool_size), 1, 1000,
	"database connections, at most (default 4)"},
	{"pool-wait-ms", "PAY_PROXY_POOL_WAIT_MS", OPT_LONG, FIELD(pool_wait_ms), 0, 3600000,
	"wait this long for a free connection, then answer 503 (default 2000)"},
	{"connect-timeout-ms", "PAY_PROXY_CONNECT_TIMEOUT_MS", OPT_LONG, FIELD(connect_timeout_ms), 1, 3600000,
	"limit on opening one database connection (default 5000)"},
	{"statement-timeout-ms", "PAY_PROXY_STATEMENT_TIMEOUT_MS", OPT_LONG, FIELD(statement_timeout_ms), 1, 3600000,
	"PostgreSQL statement_timeout of every call; over it: 504 (default 10000)"},
	{"request-timeout-ms", "PAY_PROXY_REQUEST_TIMEOUT_MS", OPT_LONG, FIELD(request_timeout_ms), 100, 3600000,
	"limit on a whole request (body upload, pool wait, SQL); also the idle connection timeout (default 30000)"},
	{"header-timeout-ms", "PAY_PROXY_HEADER_TIMEOUT_MS", OPT_LONG, FIELD(header_timeout_ms), 100, 3600000,
	"close a connection whose request headers are not complete this long after accept or the previous request (default 10000)"},
	{"shutdown-timeout-ms", "PAY_PROXY_SHUTDOWN_TIMEOUT_MS", OPT_LONG, FIELD(shutdown_timeout_ms), 0, 3600000,
	"on SIGTERM/SIGINT, wait this long for requests in flight (default 30000)"},
	{"max-body-bytes", "PAY_PROXY_MAX_BODY_BYTES", OPT_LONG, FIELD(max_body_bytes), 1, 64L * 1024 * 1024,
	"larger request bodies are answered 413 (default 1048576)"},
	{"max-connections", "PAY_PROXY_MAX_CONNECTIONS", OPT_LONG, FIELD(max_connections), 1, 10000,
	"concurrent HTTP connections, at most (default 256)"},
	{"max-connections-per-client", "PAY_PROXY_MAX_CONNECTIONS_PER_CLIENT", OPT_LONG, FIELD(max_connections_per_client), 1, 10000,
	"concurrent HTTP connections from one IP address, at most; more are refused (default 64)"},
	{"client-rate", "PAY_PROXY_CLIENT_RATE", OPT_LONG, FIELD(client_rate), 0, 1000000,
	"requests per second from one IP address (a token bucket); more are answered 429 before any SQL; 0: no limit (default 0)"},
	{"client-burst", "PAY_PROXY_CLIENT_BURST", OPT_LONG, FIELD(client_burst), 1, 1000000,
	"bucket size of --client-rate: requests one IP address may send at once (default 50)"},
	{"tls-cert", "PAY_PROXY_TLS_CERT", OPT_STRING, FIELD(tls_cert), 0, 0,
	"PEM certificate (chain) file: serve HTTPS, TLS 1.2 minimum"},
	{"tls-key", "PAY_PROXY_TLS_KEY", OPT_STRING, FIELD(tls_key), 0, 0,
	"PEM private key file for --tls-cert"},
	{"log-format", "PAY_PROXY_LOG_FORMAT", OPT_STRING, FIELD(log_format), 0, 0,
	"text (logfmt, the default) or json (one object per line, with the trace id)"},
	{"otlp-endpoint", "PAY_PROXY_OTLP_ENDPOINT", OPT_STRING, FIELD(otlp_endpoint), 0, 0,
	"post each request's span to this OTLP/HTTP JSON traces URL, e.g. http://127.0.0.1:4318/v1/traces "
	"(batched; a slow or dead collector never delays a request; default: no export)"},
	{"help", NULL, OPT_HELP, 0, 0, 0, "print this help and exit"},
	{"version", NULL, OPT_VERSION, 0, 0, 0, "print the version and exit"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* Print --help */
void
ConfigUsage(FILE *out)
{
	fprintf(out,
			"pay-proxy " PAY_PROXY_VERSION " — thin HTTP-to-SQL proxy for the pay extension\n"
			"\n"
			"Usage: pay-proxy [--flag=value ...]\n"
			"\n"
			"Routes (each is one SQL call):\n"
			"  POST /callbacks/{gateway}      pay.handle_callback(gateway, headers, body)\n"
			"  POST /api/v1/payments          pay.api_create_payment(headers, body)\n"
			"  GET  /api/v1/payments/{id}     pay.api_get_payment(headers, id)\n"
			"  GET  /healthz                  SELECT 1\n"
			"  GET  /metrics                  pay.metrics() (Prometheus text format)\n"
			"\n"
			"Flags, and the environment variable read for each (a flag wins):\n");
	for (size_t i = 0; i < N_OPTIONS; i++)
	{
		const OptionSpec *o = &options[i];
		char		left[64];

		snprintf(left, sizeof(left), "--%s%s", o->flag,
				 o->kind == OPT_STRING || o->kind == OPT_LONG ? "=VALUE" : "");
		if (o->env != NULL)
			fprintf(out, "  %-36s %s\n  %-36s %s\n", left, o->env, "", o->help);
		else
			fprintf(out, "  %-36s %s\n", left, o->help);
	}
	fprintf(out,
			"\n"
			"Signals: SIGTERM or SIGINT stop accepting connections, let requests in flight\n"
			"finish (up to --shutdown-timeout-ms), then exit 0.  One access-log line per\n"
			"request is written to stderr.\n");
}

/* Store text as the value of option o in cfg; false with a message if invalid */
static bool
SetOption(ProxyConfig *cfg, const OptionSpec *o, const char *text, const char *source)
{
	char	   *base = (char *) cfg;

	if (o->kind == OPT_STRING)
	{
		*(const char **) (base + o->offset) = text;
		return true;
	}
	if (o->kind == OPT_LONG)
	{
		char	   *end;
		long		v;

		errno = 0;
		v = strtol(text, &end, 10);
		if (errno != 0 || end == text || *end != '\0' || v < o->min || v > o->max)
		{
			fprintf(stderr, "pay-proxy: invalid value for %s: \"%s\" (an integer from %ld to %ld)\n",
					source, text, o->min, o->max);
			return false;
		}
		*(long *) (base + o->offset) = v;
		return true;
	}
	return true;
}

/* Fill cfg from defaults, then the environment, then argv */
ConfigResult
ConfigLoad(ProxyConfig *cfg, int argc, char **argv)
{
	struct option long_options[N_OPTIONS + 1];
	int			c;
	int			index;

	memset(cfg, 0, sizeof(*cfg));
	cfg->dsn = "";
	cfg->listen = "127.0.0.1:8080";
	cfg->pool_size = 4;
	cfg->pool_wait_ms = 2000;
	cfg->connect_timeout_ms = 5000;
	cfg->statement_timeout_ms = 10000;
	cfg->request_timeout_ms = 30000;
	cfg->header_timeout_ms = 10000;
	cfg->shutdown_timeout_ms = 30000;
	cfg->max_body_bytes = 1024 * 1024;
	cfg->max_connections = 256;
	cfg->max_connections_per_client = 64;
	cfg->client_rate = 0;
	cfg->client_burst = 50;
	cfg->log_format = "text";

	for (size_t i = 0; i < N_OPTIONS; i++)
	{
		const char *v;

		if (options[i].env == NULL || (v = getenv(options[i].env)) == NULL)
			continue;
		if (!SetOption(cfg, &options[i], v, options[i].env))
			return CONFIG_ERROR;
	}

	for (size_t i = 0; i < N_OPTIONS; i++)
	{
		long_options[i].name = options[i].flag;
		long_options[i].has_arg =
			(options[i].kind == OPT_STRING || options[i].kind == OPT_LONG) ? required_argument : no_argument;
		long_options[i].flag = NULL;
		long_options[i].val = 0;
	}
	memset(&long_options[N_OPTIONS], 0, sizeof(long_options[0]));

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", long_options, &index)) != -1)
	{
		const OptionSpec *o;
		char		source[64];

		if (c == 'h')
		{
			ConfigUsage(stdout);
			return CONFIG_EXIT_SUCCESS;
		}
		if (c != 0)
		{
			fprintf(stderr, "pay-proxy: unknown flag or missing value: %s\n(see pay-proxy --help)\n",
					argv[optind - 1]);
			return CONFIG_ERROR;
		}
		o = &options[index];
		if (o->kind == OPT_HELP)
		{
			ConfigUsage(stdout);
			return CONFIG_EXIT_SUCCESS;
		}
		if (o->kind == OPT_VERSION)
		{
			printf("pay-proxy %s\n", PAY_PROXY_VERSION);
			return CONFIG_EXIT_SUCCESS;
		}
		snprintf(source, sizeof(source), "--%s", o->flag);
		if (!SetOption(cfg, o, optarg, source))
			return CONFIG_ERROR;
	}
	if (optind < argc)
	{
		fprintf(stderr, "pay-proxy: unexpected argument: %s\n(see pay-proxy --help)\n", argv[optind]);
		return CONFIG_ERROR;
	}
	if ((cfg->tls_cert && *cfg->tls_cert) != (cfg->tls_key && *cfg->tls_key))
	{
		fprintf(stderr, "pay-proxy: --tls-cert and --tls-key must be given together\n");
		return CONFIG_ERROR;
	}
	if (cfg->tls_cert && *cfg->tls_cert == '\0')
		cfg->tls_cert = cfg->tls_key = NULL;
	if (cfg->otlp_endpoint && *cfg->otlp_endpoint == '\0')
		cfg->otlp_endpoint = NULL;
	if (cfg->otlp_endpoint && strncmp(cfg->otlp_endpoint, "http://", 7) != 0 &&
		strncmp(cfg->otlp_endpoint, "https://", 8) != 0)
	{
		fprintf(stderr, "pay-proxy: --otlp-endpoint must be an http:// or https:// URL\n");
		return CONFIG_ERROR;
	}
	return CONFIG_OK;
}

/* Resolve cfg->listen into a socket address; false with a message on stderr if invalid */
bool
ConfigResolveListen(const ProxyConfig *cfg, struct sockaddr_storage *addr, socklen_t *addr_len)
{
	char		host[256];
	const char *port;
	const char *colon;
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	size_t		host_len;
	int			rc;

	if (cfg->listen[0] == '[')
	{
		const char *close = strchr(cfg->listen, ']');

		if (close == NULL || close[1] != ':')
			goto invalid;
		host_len = (size_t) (close - cfg->listen - 1);
		if (host_len == 0 || host_len >= sizeof(host))
			goto invalid;
		memcpy(host, cfg->listen + 1, host_len);
		port = close + 2;
	}
	else
	{
		colon = strrchr(cfg->listen, ':');
		if (colon == NULL)
			goto invalid;
		host_len = (size_t) (colon - cfg->listen);
		if (host_len >= sizeof(host) || memchr(cfg->listen, ':', host_len) != NULL)
			goto invalid;
		memcpy(host, cfg->listen, host_len);
		port = colon + 1;
	}
	host[host_len] = '\0';
	if (*port == '\0' || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
		atoi(port) > 65535)
		goto invalid;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = host_len ? AF_UNSPEC : AF_INET;	/* ":port" means every IPv4 interface */
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host_len ? host : NULL, port, &hints, &res);
	if (rc != 0 || res == NULL)
	{
		fprintf(stderr, "pay-proxy: cannot resolve listen address \"%s\": %s\n",
				cfg->listen, rc ? gai_strerror(rc) : "no address");
		return false;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return true;

invalid:
	fprintf(stderr, "pay-proxy: invalid listen address \"%s\" (expected host:port or [ipv6]:port)\n",
			cfg->listen);
	return false;
}
