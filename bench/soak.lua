-- wrk script for bench/soak: a mix of every kind of generation request, each response
-- checked for completeness, and one machine-readable RESULT line at the end.
--
-- Requests cycle through /generate and /v1/completions, each as JSON and as SSE, with
-- max_tokens 16–200, varied temperature / top_k / top_p / repetition penalty and window,
-- stop sequences on a third of them, and prompts that are empty, short, long or hold chars
-- the model does not know. A 200 counts as complete only if its body is whole: a JSON reply
-- with a finish_reason and a closing brace; a /generate stream ending with the "done" event;
-- a /v1 stream ending with "data: [DONE]". The body tells which kind it is, so no request
-- bookkeeping is needed (wrk does not say which request a response answers).
local threads = {}

local prompts = {
  "It was on a dreary night of November that",
  "",
  "I beheld the wretch",
  "caf\\u00e9 \\u2603 \\u65e5\\u672c and the monster",
  string.rep("The ice cracked and the wind rose. ", 10),
  "\\n",
}
local stops = {
  nil,
  '"e"',
  '["\\n", "the"]',
  '[". ", "and", "!", "?"]',
  nil,
  nil,
}
local max_tokens = { 16, 32, 64, 100, 200 }
local temperatures = { 0, 0.5, 0.8, 1.0, 1.3 }
local top_ks = { 0, 1, 10, 40 }
local top_ps = { 1, 0.95, 0.5 }
local penalties = { 1, 1.1, 1.5, 3 }
local windows = { 0, 16, 64, 256 }

local function pick(t)
  return t[math.random(#t)]
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + #threads * 7919 + math.floor(os.clock() * 1e6))
  seq = 0
  statuses = {}
  kinds = { json = 0, sse = 0, v1_json = 0, v1_sse = 0 }
  incomplete = 0
  sample_bad = ""
end

function request()
  seq = seq + 1
  local v1 = seq % 2 == 0
  local stream = math.floor(seq / 2) % 2 == 1
  local f = {}
  f[#f + 1] = string.format('"prompt": "%s"', pick(prompts))
  f[#f + 1] = string.format('"max_tokens": %d', pick(max_tokens))
  f[#f + 1] = string.format('"temperature": %s', pick(temperatures))
  f[#f + 1] = string.format('"top_k": %d', pick(top_ks))
  f[#f + 1] = string.format('"top_p": %s', pick(top_ps))
  f[#f + 1] = string.format('"repetition_penalty": %s', pick(penalties))
  f[#f + 1] = string.format('"repetition_window": %d', pick(windows))
  f[#f + 1] = string.format('"seed": %d', math.random(0, 2 ^ 31))
  local stop = pick(stops)
  if stop then f[#f + 1] = '"stop": ' .. stop end
  if stream then
    f[#f + 1] = '"stream": true'
    if v1 and math.random(2) == 1 then
      f[#f + 1] = '"stream_options": {"include_usage": true}'
    end
  end
  if v1 then f[#f + 1] = '"model": "charlm"' end
  local path = v1 and "/v1/completions" or "/generate"
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" },
                    "{" .. table.concat(f, ", ") .. "}")
end

local function complete(body)
  if body:sub(1, 6) == "data: " then
    if body:find('"object":"text_completion"', 1, true) then
      return "v1_sse", body:sub(-14) == "data: [DONE]\n\n"
    end
    return "sse", body:find('"done":true}\n\n$') ~= nil
  end
  local kind = body:find('"object":"text_completion"', 1, true) and "v1_json" or "json"
  return kind, body:find('"finish_reason":"', 1, true) ~= nil and body:find("}%s*$") ~= nil
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 then
    if sample_bad == "" then sample_bad = status .. " " .. body:sub(1, 200) end
    return
  end
  local kind, ok = complete(body)
  kinds[kind] = kinds[kind] + 1
  if not ok then
    incomplete = incomplete + 1
    if sample_bad == "" then sample_bad = "incomplete " .. kind .. ": " .. body:sub(-200) end
  end
end

function done(summary, latency, requests)
  local agg, k, ok, other, bad, sample = {}, {}, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do agg[code] = (agg[code] or 0) + n end
    for kind, n in pairs(t:get("kinds")) do k[kind] = (k[kind] or 0) + n end
    bad = bad + t:get("incomplete")
    if sample == "" then sample = t:get("sample_bad") end
  end
  local parts = {}
  for code, n in pairs(agg) do
    if code >= 200 and code < 300 then ok = ok + n else other = other + n end
    table.insert(parts, code .. ":" .. n)
  end
  table.sort(parts)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.1f ok=%d non2xx=%d incomplete=%d connect=%d read=%d " ..
    "write=%d timeout=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f json=%d sse=%d v1_json=%d " ..
    "v1_sse=%d statuses=%s\n",
    summary.requests, summary.duration / 1e6, ok, other, bad, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    k.json or 0, k.sse or 0, k.v1_json or 0, k.v1_sse or 0, table.concat(parts, ",")))
  if sample ~= "" then
    io.write("FIRSTBAD " .. sample:gsub("\n", "\\n") .. "\n")
  end
end
