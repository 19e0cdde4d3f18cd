-- wrk script: prints one machine-readable line after the run.
--   RESULT rps=<requests/s> p50_ms=<..> p99_ms=<..> requests=<n> non2xx=<n> errors=<n>
done = function(summary, latency, requests)
   local secs = summary.duration / 1e6
   local errs = summary.errors.connect + summary.errors.read +
                summary.errors.write + summary.errors.timeout
   io.write(string.format(
      "RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d errors=%d\n",
      summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      summary.requests, summary.errors.status, errs))
end
