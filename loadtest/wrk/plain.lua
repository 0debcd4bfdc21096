-- wrk script for a fixed URL: `-- METHOD` (default GET). Prints one BENCH line at the end.
local method = "GET"

function init(args)
  if args[1] then method = args[1] end
end

function request()
  return wrk.format(method, nil)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
