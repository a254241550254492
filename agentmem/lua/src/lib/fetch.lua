-- lib/fetch.lua: a part included by scripts (see agentmem/lua/loader.py).

local function fetch_into(out, key)
  local h = redis.call('HGETALL', key)
  if #h > 0 then out[#out + 1] = h; return true end
  return false
end
