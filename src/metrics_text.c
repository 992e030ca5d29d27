/*
 * metrics_text.c — pay.metrics(): the counters of metrics.c and a few
 * gauges read from the tables, in the Prometheus text exposition format
 * (version 0.0.4), which pay-proxy serves at GET /metrics.
 *
 * Only label values from fixed enums and from the gateway table of
 * metrics.c appear, so the number of series is bounded.  The gauges are
 * read at scrape time, from tables kept small or from partial indexes; they
 * are read whether pay is preloaded or not.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "metrics.h"

PG_FUNCTION_INFO_V1(pay_metrics);

static const char *const verdict_names[N_VERDICTS] = {"accepted", "duplicate", "rejected", "error"};
static const char *const status_names[N_STATUSES] = {
	"pending", "paid", "shipped", "completed", "cancelled", "failed", "refunded", "other"
};
static const char *const kind_names[N_KINDS] = {"psp_request", "merchant_notification"};
static const char *const outcome_names[N_OUTCOMES] = {"done", "retry", "dead"};

static void
Header(StringInfo out, const char *name, const char *type, const char *help)
{
	appendStringInfo(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format asks (backslash, quote, newline). */
static void
LabelValue(StringInfo out, const char *value)
{
	for (; *value; value++)
	{
		if (*value == '\\' || *value == '"')
			appendStringInfoChar(out, '\\');
		if (*value == '\n')
			appendStringInfoString(out, "\\n");
		else
			appendStringInfoChar(out, *value);
	}
}

static void
Sample(StringInfo out, const char *name, uint64 value)
{
	appendStringInfo(out, "%s " UINT64_FORMAT "\n", name, value);
}

/* The gateway slots that have a name: the used ones, "(unknown)", and "(other)" once counted in. */
static int
GatewaySlots(int *slots, int first, int per_slot)
{
	int			n = 0;
	int			s;
	int			i;

	for (s = 0; s < METRICS_GATEWAYS && MetricGatewayName(s) != NULL; s++)
		slots[n++] = s;
	slots[n++] = GATEWAY_SLOT_UNKNOWN;
	for (i = 0; i < per_slot; i++)
		if (MetricsRead(first + GATEWAY_SLOT_OTHER * per_slot + i) > 0)
		{
			slots[n++] = GATEWAY_SLOT_OTHER;
			break;
		}
	return n;
}

static void
Counters(StringInfo out)
{
	int			slots[N_GATEWAY_SLOTS];
	int			nslots;
	int			i;
	int			j;

	Header(out, "pay_orders_created_total", "counter", "Orders created (committed).");
	Sample(out, "pay_orders_created_total", MetricsRead(METRIC_ORDERS_CREATED));

	Header(out, "pay_order_transitions_total", "counter",
		   "Committed order status changes, by the status moved to.");
	for (i = 0; i < N_STATUSES; i++)
		if (i != STATUS_OTHER || MetricsRead(METRIC_TRANSITIONS + i) > 0)
			appendStringInfo(out, "pay_order_transitions_total{to=\"%s\"} " UINT64_FORMAT "\n",
							 status_names[i], MetricsRead(METRIC_TRANSITIONS + i));

	Header(out, "pay_callbacks_total", "counter",
		   "PSP callbacks, by gateway and verdict; names that are no gateway count as (unknown).");
	nslots = GatewaySlots(slots, METRIC_CALLBACKS, N_VERDICTS);
	for (i = 0; i < nslots; i++)
		for (j = 0; j < N_VERDICTS; j++)
		{
			appendStringInfoString(out, "pay_callbacks_total{gateway=\"");
			LabelValue(out, MetricGatewayName(slots[i]));
			appendStringInfo(out, "\",verdict=\"%s\"} " UINT64_FORMAT "\n", verdict_names[j],
							 MetricsRead(METRIC_CALLBACKS + slots[i] * N_VERDICTS + j));
		}

	Header(out, "pay_signature_failures_total", "counter",
		   "Callbacks whose signature did not verify, by gateway.");
	nslots = GatewaySlots(slots, METRIC_SIGNATURE_FAILURES, 1);
	for (i = 0; i < nslots; i++)
	{
		appendStringInfoString(out, "pay_signature_failures_total{gateway=\"");
		LabelValue(out, MetricGatewayName(slots[i]));
		appendStringInfo(out, "\"} " UINT64_FORMAT "\n", MetricsRead(METRIC_SIGNATURE_FAILURES + slots[i]));
	}

	Header(out, "pay_outbox_deliveries_total", "counter",
		   "Delivery attempts of PSP requests and merchant notifications, by kind and outcome (dead: a dead letter).");
	for (i = 0; i < N_KINDS; i++)
		for (j = 0; j < N_OUTCOMES; j++)
			appendStringInfo(out, "pay_outbox_deliveries_total{kind=\"%s\",outcome=\"%s\"} " UINT64_FORMAT "\n",
							 kind_names[i], outcome_names[j],
							 MetricsRead(METRIC_DELIVERIES + i * N_OUTCOMES + j));

	Header(out, "pay_rate_limited_total", "counter", "Requests refused by a rate limit.");
	Sample(out, "pay_rate_limited_total", MetricsRead(METRIC_RATE_LIMITED));
}

/* The (gateway, operation) series of PSP requests that have any count, as slot * N_OPERATIONS + op. */
static int
PspSeries(int *series)
{
	int			slots[N_GATEWAY_SLOTS];
	int			nslots = GatewaySlots(slots, METRIC_PSP_REQUESTS, N_OPERATIONS * N_OUTCOMES);
	int			n = 0;
	int			i;
	int			op;
	int			k;

	for (i = 0; i < nslots; i++)
		for (op = 0; op < N_OPERATIONS; op++)
		{
			int			s = slots[i] * N_OPERATIONS + op;
			uint64		total = 0;

			for (k = 0; k < N_OUTCOMES; k++)
				total += MetricsRead(METRIC_PSP_REQUESTS + s * N_OUTCOMES + k);
			if (total > 0)
				series[n++] = s;
		}
	return n;
}

/* gateway="...",operation="..." of a series into buf */
static void
SeriesLabels(StringInfo buf, int series)
{
	appendStringInfoString(buf, "gateway=\"");
	LabelValue(buf, MetricGatewayName(series / N_OPERATIONS));
	appendStringInfo(buf, "\",operation=\"%s\"", metric_operation_names[series % N_OPERATIONS]);
}

/* PSP requests by gateway, operation and outcome, and their latency histogram. */
static void
PspRequests(StringInfo out)
{
	int			series[N_SERIES];
	int			n = PspSeries(series);
	int			i;
	int			k;
	int			b;

	Header(out, "pay_psp_requests_total", "counter",
		   "PSP request attempts by gateway, operation and outcome.");
	for (i = 0; i < n; i++)
	{
		StringInfoData labels;

		initStringInfo(&labels);
		SeriesLabels(&labels, series[i]);
		for (k = 0; k < N_OUTCOMES; k++)
			appendStringInfo(out, "pay_psp_requests_total{%s,outcome=\"%s\"} " UINT64_FORMAT "\n",
							 labels.data, outcome_names[k],
							 MetricsRead(METRIC_PSP_REQUESTS + series[i] * N_OUTCOMES + k));
	}

	Header(out, "pay_psp_request_duration_seconds", "histogram",
		   "Time from sending a PSP request to its answer, by gateway and operation.");
	for (i = 0; i < n; i++)
	{
		int			base = METRIC_PSP_BUCKETS + series[i] * (N_LATENCY_BUCKETS + 1);
		uint64		cumulative = 0;
		StringInfoData labels;

		initStringInfo(&labels);
		SeriesLabels(&labels, series[i]);
		for (b = 0; b <= N_LATENCY_BUCKETS; b++)
		{
			cumulative += MetricsRead(base + b);
			if (b < N_LATENCY_BUCKETS)
				appendStringInfo(out, "pay_psp_request_duration_seconds_bucket{%s,le=\"%g\"} "
								 UINT64_FORMAT "\n", labels.data, metric_latency_bounds[b], cumulative);
			else
				appendStringInfo(out, "pay_psp_request_duration_seconds_bucket{%s,le=\"+Inf\"} "
								 UINT64_FORMAT "\n", labels.data, cumulative);
		}
		appendStringInfo(out, "pay_psp_request_duration_seconds_sum{%s} %.6f\n",
						 labels.data, (double) MetricsRead(METRIC_PSP_SUM_US + series[i]) / 1e6);
		appendStringInfo(out, "pay_psp_request_duration_seconds_count{%s} " UINT64_FORMAT "\n",
						 labels.data, cumulative);
	}
}

/* One gauge whose value is the single numeric column of sql. */
static void
Gauge(StringInfo out, const char *name, const char *help, const char *sql)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read gauge %s", name);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	Header(out, name, "gauge", help);
	appendStringInfo(out, "%s %s\n", name,
					 isnull ? "0" : DatumGetCString(DirectFunctionCall1(numeric_out, d)));
}

static void
Gauges(StringInfo out)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	Gauge(out, "pay_outbox_pending", "Undelivered outbox rows (pending or in flight).",
		  "SELECT pg_catalog.sum(undelivered)::pg_catalog.numeric FROM pay.outbox_backlog");
	Gauge(out, "pay_outbox_dead_letters", "Outbox rows that gave up (dead letters) and are not yet redriven or purged.",
		  "SELECT pg_catalog.count(*)::pg_catalog.numeric FROM pay.outbox WHERE state = 'dead'");
	Gauge(out, "pay_circuits_open", "Destinations whose circuit breaker is open.",
		  "SELECT pg_catalog.count(*)::pg_catalog.numeric FROM pay.circuit_breakers WHERE state = 'open'");
	Gauge(out, "pay_oldest_pending_order_age_seconds", "Age of the oldest pending order.",
		  "SELECT pg_catalog.round(EXTRACT(EPOCH FROM pg_catalog.now() OPERATOR(pg_catalog.-) "
		  "pg_catalog.min(created_at)), 3) FROM pay.orders WHERE status = 'pending'");
	Gauge(out, "pay_reconciliation_breaks",
		  "Statement lines that did not match the books and are not repaired (missing_at_psp, evaluated on read, not included).",
		  "SELECT pg_catalog.count(*)::pg_catalog.numeric FROM pay.statement_lines "
		  "WHERE result <> 'matched' AND repaired_at IS NULL");
	SPI_finish();
}

/* pay.metrics() -> text */
Datum
pay_metrics(PG_FUNCTION_ARGS)
{
	StringInfoData out;

	initStringInfo(&out);
	Header(&out, "pay_metrics_available", "gauge",
		   "1 when the counters exist (pay in shared_preload_libraries), else 0.");
	Sample(&out, "pay_metrics_available", MetricsAvailable() ? 1 : 0);
	if (MetricsAvailable())
	{
		Counters(&out);
		PspRequests(&out);
	}
	else
		appendStringInfoString(&out,
							   "# pay is not in shared_preload_libraries: its counters do not exist "
							   "(add pay to shared_preload_libraries and restart); only the gauges are read\n");
	Gauges(&out);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
