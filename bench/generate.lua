-- wrk script for bench/serve_bench.sh: POST /generate with max_tokens 200, temperature
-- 0.8 and a different seed per request (so the work is realistic but reproducible), and
-- a JSON summary line at the end for the script to parse.
--   wrk -c8 -d10s --latency -s bench/generate.lua http://127.0.0.1:PORT/generate
local counter = 0

function request()
    counter = counter + 1
    local body = string.format(
        '{"prompt": "It was on a dreary night of November", "max_tokens": 200, ' ..
        '"temperature": 0.8, "seed": %d}', counter)
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'WRKJSON {"requests": %d, "duration_s": %.3f, "rps": %.2f, "p50_ms": %.2f, ' ..
        '"p99_ms": %.2f, "mean_ms": %.2f, "non2xx": %d, "errors": %d}\n',
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.mean / 1e3,
        e.status, e.connect + e.read + e.write + e.timeout))
end
