-- wrk script for GET /v1/queue/status: rotates through a pool of tickets, one a line in the
-- file named by the first argument (at most the second argument of them), so every request
-- is a different waiting person. Prints one BENCH line at the end.
local tickets = {}
local i = 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  local pool = tonumber(args[2]) or 10000
  for line in io.lines(args[1]) do
    tickets[#tickets + 1] = "Bearer " .. line
    if #tickets >= pool then break end
  end
  assert(#tickets > 0, "no tickets in " .. args[1])
  -- Threads start at different places in the pool.
  i = ((id or 0) * 7919) % #tickets
end

function request()
  i = i % #tickets + 1
  return wrk.format("GET", "/v1/queue/status", { ["Authorization"] = tickets[i] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
