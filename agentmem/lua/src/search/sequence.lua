#!lua flags=no-writes
-- sequence: an agent's actions over its timelines, for sequence analytics.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: min, max, limit, newest, then per timeline: tier, key, prefix, suffix, type field, reward field
-- Reply: {tier, id, step, type, reward, ...} per action whose hash exists
-- ARGV: min, max, limit (-1: all; the newest when newest = '1'), newest ('1'|'0'),
-- then per timeline: tier letter, timeline key, hash prefix, hash suffix, and the hash
-- fields of the action type and the reward (as the tier's hashes name them).
-- Returns {tier, id, step, type, reward, ...} per action whose hash exists, each
-- timeline in (step, id) order (newest first when newest = '1'); reward false when
-- absent. The caller merges the timelines.
local lo, hi, limit, newest = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local out = {}
for t = 5, #ARGV, 6 do
  local tier, tl, pre, suf = ARGV[t], ARGV[t + 1], ARGV[t + 2], ARGV[t + 3]
  local tf, rf = ARGV[t + 4], ARGV[t + 5]
  local r
  local extra = {}
  if limit >= 0 then extra = {'LIMIT', 0, limit} end
  if newest then
    r = redis.call('ZRANGE', tl, hi, lo, 'BYSCORE', 'REV', 'WITHSCORES', unpack(extra))
  else
    r = redis.call('ZRANGE', tl, lo, hi, 'BYSCORE', 'WITHSCORES', unpack(extra))
  end
  for i = 1, #r, 2 do
    local h = redis.call('HMGET', pre .. r[i] .. suf, tf, rf)
    if h[1] then
      out[#out + 1] = tier
      out[#out + 1] = r[i]
      out[#out + 1] = r[i + 1]
      out[#out + 1] = h[1]
      out[#out + 1] = h[2]
    end
  end
end
return out
