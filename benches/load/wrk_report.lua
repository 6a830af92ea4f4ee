-- wrk_report.lua: print wrk's summary as one machine-readable line for report.py.
--
-- Only a done() hook is defined: a per-request request()/response() hook would
-- push wrk off its static-request fast path and make wrk, not the server, the
-- bottleneck. Latencies are in microseconds, duration too.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
