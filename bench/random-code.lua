-- wrk script: GET a random code from the file named by $CODES (one code a line), uniformly.
local codes = {}
for line in io.lines(os.getenv("CODES")) do
  codes[#codes + 1] = line
end
math.randomseed(tonumber(os.getenv("SEED") or "42"))

request = function()
  return wrk.format("GET", "/" .. codes[math.random(#codes)])
end
