-- wrk script: cycle through the requests in $WRK_REQUESTS, one "METHOD<TAB>PATH<TAB>BODY" a line,
-- and print a JSON summary line (wrk's own text output is kept for people).
local reqs, i = {}, 0

function init(args)  -- in init, not at load: wrk.format needs wrk.host for the Host header
  for line in io.lines(os.getenv("WRK_REQUESTS")) do
    local method, path, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
    reqs[#reqs + 1] = wrk.format(method, path, {["Content-Type"] = "application/json"},
                                 body ~= "" and body or nil)
  end
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "socket_errors": %d, "status_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
