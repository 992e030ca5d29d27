-- Observability: pay.metrics(), the Prometheus text that pay-proxy serves
-- at GET /metrics.  Counters live in shared memory (src/metrics.c) and exist
-- only when pay is in shared_preload_libraries; the gauges are read from
-- the tables at each call, hence SECURITY DEFINER: the scraper needs no
-- grant on the tables, and sees only counts.
CREATE FUNCTION pay.metrics() RETURNS text
    AS 'MODULE_PATHNAME', 'pay_metrics'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.metrics() IS
  'counters, histograms and gauges in the Prometheus text exposition format (names pay_*); the counters need pay in shared_preload_libraries';
GRANT EXECUTE ON FUNCTION pay.metrics() TO pay_callback, pay_admin, pay_readonly;
