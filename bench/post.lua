-- wrk script: each thread POSTs its own slice of lines "cookie csrf product_key country"
-- from the file named by the first argument, and prints latency percentiles as JSON.
-- Usage: wrk -s post.lua URL -- LINES_FILE THREADS PATH   (LINES_FILE "-" posts a fixed body)
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = args[3]
  lines = {}
  if args[1] ~= "-" then
    local nthreads, i = tonumber(args[2]), 0
    for line in io.lines(args[1]) do
      if i % nthreads == id then lines[#lines + 1] = line end
      i = i + 1
    end
  end
  n = 0
end

function request()
  n = n + 1
  if #lines == 0 then
    return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded"}, "x=1")
  end
  local cookie, csrf, key, country = lines[(n - 1) % #lines + 1]:match("(%S+) (%S+) (%S+) (%S+)")
  -- The idempotency key names the product key, so a refusal line can never replay an
  -- earlier run's redemption that happened to share a thread id and request number.
  local body = "csrf=" .. csrf .. "&product_key=" .. key .. "&country=" .. country ..
               "&accept_terms=yes&idempotency_key=" .. key .. "-" .. id .. "-" .. n
  return wrk.format("POST", path, {["Cookie"] = "promo_session=" .. cookie,
                                   ["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "status_errors": %d, "socket_errors": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
