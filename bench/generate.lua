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
    -- With no completed request there is no latency to report: null, not a made-up 0 or nan.
    local function ms(v)
        if summary.requests == 0 or v ~= v then return "null" end
        return string.format("%.2f", v / 1e3)
    end
    io.write(string.format(
        'WRKJSON {"requests": %d, "duration_s": %.3f, "rps": %.2f, "p50_ms": %s, ' ..
        '"p99_ms": %s, "mean_ms": %s, "non2xx": %d, "errors": %d, "timeouts": %d}\n',
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        ms(latency:percentile(50)), ms(latency:percentile(99)), ms(latency.mean),
        e.status, e.connect + e.read + e.write + e.timeout, e.timeout))
end
