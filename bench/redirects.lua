-- wrk script: GET codes like real traffic. Every request carries one of a few real user
-- agents (browsers, phones, a crawler) and referrers.
--
-- Which codes, from the environment:
--   CODES=file   the codes listed in the file, one a line;
--   N=n          the codes of links 1..n made by examples/bulk_load.rs (no list needed);
--   ZIPF=1       ranks follow Zipf's law (s = 1) instead of a uniform draw;
--   SWEEP=1      every code once, in order (to fill a cache), then again.
-- And how fast:
--   DELAY_MS=d   each connection waits d ms after an answer before its next request, so
--                the offered load is fixed (about connections / d per ms) instead of all
--                the server can take: latency then measures the work, not the queue.
local codes, n = nil, tonumber(os.getenv("N") or "0")
if os.getenv("CODES") then
  codes = {}
  for line in io.lines(os.getenv("CODES")) do
    codes[#codes + 1] = line
  end
  n = #codes
end
math.randomseed(tonumber(os.getenv("SEED") or "42"))

-- The code of link i, as examples/bulk_load.rs makes it: "b" .. base62(i * 48271 mod (2^31 - 1)).
local digits = {}
for d = 0, 61 do
  digits[d] = string.byte("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", d + 1)
end
local function numbered(i)
  local x = (i * 48271) % 2147483647
  local out, k = {}, 0
  while x > 0 do
    local d = x % 62
    k = k + 1
    out[k] = digits[d]
    x = (x - d) / 62
  end
  -- most significant digit first, after the "b"
  local bytes = { 98 }
  for j = k, 1, -1 do bytes[#bytes + 1] = out[j] end
  return string.char(unpack(bytes))
end

local made = {}
local function code(rank)
  if codes then return codes[rank] end
  local c = made[rank]
  if not c then
    c = numbered(rank)
    made[rank] = c
  end
  return c
end

local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}
local referrers = { "", "https://t.co/abc", "https://www.google.com/", "https://news.ycombinator.com/item?id=1" }

-- Zipf (s = 1) over ranks 1..n by inverting the cumulative weights (precomputed once).
local cumulative = nil
if os.getenv("ZIPF") then
  cumulative = {}
  local total = 0
  for k = 1, n do
    total = total + 1 / k
    cumulative[k] = total
  end
  for k = 1, n do
    cumulative[k] = cumulative[k] / total
  end
end

local sweep = os.getenv("SWEEP") and 0 or nil

local function pick()
  if sweep then
    sweep = sweep % n + 1
    return sweep
  end
  if not cumulative then
    return math.random(n)
  end
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cumulative[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Every request is "GET /" .. code .. one of these (agent × referrer), made once: the load
-- generator must not be what limits the measurement.
local tails = {}
for _, agent in ipairs(agents) do
  for _, referrer in ipairs(referrers) do
    local t = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port .. "\r\nUser-Agent: " .. agent .. "\r\n"
    if referrer ~= "" then
      t = t .. "Referer: " .. referrer .. "\r\n"
    end
    tails[#tails + 1] = t .. "\r\n"
  end
end

request = function()
  return "GET /" .. code(pick()) .. tails[math.random(#tails)]
end

local pause = tonumber(os.getenv("DELAY_MS") or "")
if pause then
  delay = function()
    return pause
  end
end
