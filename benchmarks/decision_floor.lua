#!lua
-- decision_floor: the decision loop's reads for many agents in one script (the floor of
-- benchmarks/decision.py; not product code).
-- KEYS: none (one server; the keys are built from ARGV)
-- ARGV: ARGV[1] the recent limit, ARGV[2] the by-type limit, then per agent three
--       values: its action-key prefix ("agent:a1:action:"), its timeline key, the key
--       of its type set for the by-type query
-- Reply: per agent {recent, by_type}, each a list of HGETALL replies (flat field/value
--        lists), newest first (by-type: by step, then id, as agentmem orders them)
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 3 do
  local prefix, timeline, typed_key = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local recent = {}
  for _, id in ipairs(redis.call('ZREVRANGE', timeline, 0, n - 1)) do
    recent[#recent + 1] = redis.call('HGETALL', prefix .. id)
  end
  local scored = {}
  for _, id in ipairs(redis.call('SMEMBERS', typed_key)) do
    scored[#scored + 1] = {tonumber(redis.call('ZSCORE', timeline, id)) or -1, id}
  end
  table.sort(scored, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    return a[2] > b[2]
  end)
  local typed = {}
  for j = 1, math.min(m, #scored) do
    typed[#typed + 1] = redis.call('HGETALL', prefix .. scored[j][2])
  end
  out[#out + 1] = {recent, typed}
end
return out
