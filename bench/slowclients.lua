-- wrk script for bench/slowclients: the "normal" requests, POST /generate with max_tokens
-- SLOW_MAX_TOKENS (default 64), each on a new connection (Connection: close), as a browser
-- user arriving while slow clients hold the server would; one RESULT line at the end.
local max_tokens = tonumber(os.getenv("SLOW_MAX_TOKENS") or "64")
local headers = { ["Content-Type"] = "application/json", ["Connection"] = "close" }
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  seq = 0
end

function request()
  seq = seq + 1
  local body = string.format(
    '{"prompt": "It was on a dreary night of November that", "max_tokens": %d, "seed": %d}',
    max_tokens, seq)
  return wrk.format("POST", "/generate", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local agg, ok, other = {}, 0, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do agg[code] = (agg[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(agg) do
    if code >= 200 and code < 300 then ok = ok + n else other = other + n end
    table.insert(parts, code .. ":" .. n)
  end
  table.sort(parts)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f ok=%d non2xx=%d connect=%d read=%d write=%d " ..
    "timeout=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f statuses=%s\n",
    summary.requests, summary.duration / 1e6, ok, other, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, table.concat(parts, ",")))
end
