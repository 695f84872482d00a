-- wrk script: send 16 pipelined GET requests per write.
-- usage: wrk -s pipeline.lua http://host:port/ (depth from PIPELINE_DEPTH, default 16)
local depth = tonumber(os.getenv("PIPELINE_DEPTH") or "16")

init = function(args)
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, "/")
  end
  req = table.concat(r)
end

request = function()
  return req
end
