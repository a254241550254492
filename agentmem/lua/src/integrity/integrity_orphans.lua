#!lua
-- integrity_orphans: one SCAN step of an index: entries whose hash is gone.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, key, cursor, count, 'z'|'s', 'a'|'s', p1, p2, p3, nfilter, filter...
-- Reply: {next cursor, orphan ids...}; fix removes them
--!include lib/integrity_common.lua

-- ARGV: mode, key, cursor, count, 'z'|'s', 'a'|'s', p1, p2, p3, nfilter, filter...
-- 'a': members are ids of one agent, hash = p1 .. id .. p2; 's': simulation-level ids.
-- One ZSCAN/SSCAN step; returns {next cursor, orphan ids...}; fix: removes them.
local key, kind, res, p1, p2, p3 = ARGV[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local filter = read_filter(10)
local r, members
if kind == 'z' then
  r = call('ZSCAN', key, ARGV[3], 'COUNT', ARGV[4])
  members = {}
  for i = 1, #r[2], 2 do members[#members + 1] = r[2][i] end
else
  r = call('SSCAN', key, ARGV[3], 'COUNT', ARGV[4])
  members = r[2]
end
local out, gone = {r[1]}, {}
for _, m in ipairs(members) do
  local orphan
  if res == 'a' then orphan = call('EXISTS', p1 .. m .. p2) == 0
  else
    local hk, agent = sim_hash(m, p1, p2, p3)
    orphan = hk == nil and (filter == nil or (agent ~= nil and filter[agent] == true))
  end
  if orphan then out[#out + 1] = m; gone[#gone + 1] = m end
end
if fix then chunked(kind == 'z' and 'ZREM' or 'SREM', key, gone) end
return out
