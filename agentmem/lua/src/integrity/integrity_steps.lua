#!lua
-- integrity_steps: one SCAN step of a steps zset: steps with no live action.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, steps key, cursor, count, step-set prefix, suffix, prefix, middle, suffix
-- Reply: {next cursor, orphan steps...}
--!include lib/integrity_common.lua

-- ARGV: mode, steps key, cursor, count, step-set prefix, step-set suffix, prefix,
-- middle, suffix. One ZSCAN step of the steps zset; a step is an orphan when its
-- step set holds no action whose hash exists. Returns {next cursor, orphan steps...}.
local key = ARGV[2]
local r = call('ZSCAN', key, ARGV[3], 'COUNT', ARGV[4])
local out, gone = {r[1]}, {}
for i = 1, #r[2], 2 do
  local step = r[2][i]
  local skey = ARGV[5] .. step .. ARGV[6]
  local live, c = false, '0'
  if call('EXISTS', skey) == 1 then
    repeat
      local s = call('SSCAN', skey, c, 'COUNT', 100)
      c = s[1]
      for _, m in ipairs(s[2]) do
        if sim_hash(m, ARGV[7], ARGV[8], ARGV[9]) then live = true; break end
      end
    until live or c == '0'
  end
  if not live then out[#out + 1] = step; gone[#gone + 1] = step end
end
if fix then chunked('ZREM', key, gone) end
return out
