-- W3C trace context (src/trace_context.c).  The transaction-local setting
-- pay.traceparent names the trace of the request a transaction serves;
-- pay-proxy passes the request's traceparent header to the route functions,
-- which adopt it.  Rows created store the trace id (pay.orders,
-- pay.callbacks and pay.outbox: trace_id, 32 hex digits); every outbound
-- request carries the same trace id with a new span id.
CREATE FUNCTION pay._trace_id() RETURNS text
    AS 'MODULE_PATHNAME', 'pay_trace_id' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay._trace_id() IS
  'the trace id (32 hex digits) of the setting pay.traceparent, NULL when it is unset or malformed';
CREATE FUNCTION pay._traceparent(trace_id text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_traceparent' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay._traceparent(text) IS
  'a traceparent header value for an outbound request: 00-<trace_id>-<new random span id>-01 (NULL unless trace_id is 32 hex digits)';
