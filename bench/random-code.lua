-- wrk script: GET a random code from the file named by $CODES (one code a line), uniformly,
-- or following Zipf's law (s = 1) when $ZIPF is set; every request carries one of a few real
-- user agents (browsers, phones and a crawler) and referrers, as real traffic does.
local codes = {}
for line in io.lines(os.getenv("CODES")) do
  codes[#codes + 1] = line
end
math.randomseed(tonumber(os.getenv("SEED") or "42"))

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
  for k = 1, #codes do
    total = total + 1 / k
    cumulative[k] = total
  end
  for k = 1, #codes do
    cumulative[k] = cumulative[k] / total
  end
end

local function pick()
  if not cumulative then
    return codes[math.random(#codes)]
  end
  local u, lo, hi = math.random(), 1, #codes
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cumulative[mid] < u then lo = mid + 1 else hi = mid end
  end
  return codes[lo]
end

request = function()
  local headers = { ["User-Agent"] = agents[math.random(#agents)] }
  local referrer = referrers[math.random(#referrers)]
  if referrer ~= "" then
    headers["Referer"] = referrer
  end
  return wrk.format("GET", "/" .. pick(), headers)
end
