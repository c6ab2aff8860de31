-- wrk script: POST /api/v1/links, each request a new link to a new URL. The API key comes
-- from $KEY.
math.randomseed(os.time())
local counter = 0
local seed = tostring(math.random(1, 1000000000))
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("KEY"),
  ["Content-Type"] = "application/json",
}

request = function()
  counter = counter + 1
  local body = '{"url":"https://example.com/new/' .. seed .. '/' .. counter .. '"}'
  return wrk.format("POST", "/api/v1/links", headers, body)
end
