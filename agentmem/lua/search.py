"""Read-only Lua scripts of similarity search and sequence analytics (``docs/search.md``).

- :data:`VECTORS` reads, for a batch of action ids of one agent, the action type
  and the raw embedding bytes of each hash (``false`` where the hash is gone):
  one call per batch, many batches per round trip.
- :data:`TIMELINE` reads a timeline's ids and scores as one string.
- :data:`SEQUENCE` reads an agent's timelines (STM, and IM when asked) in a step
  range and returns, per action whose hash exists, its tier, id, step, type and
  reward: the columns the sequence analytics need, without the rest of the hash.

Key shapes are arguments, so the scripts hold no key names. Neither writes.
"""

from __future__ import annotations

from agentmem.lua.scripts import Script

VECTORS = Script("vectors", r"""#!lua flags=no-writes
-- ARGV: hash prefix, hash suffix, type field, embedding field, ids...
-- Returns {type, embedding, type, embedding, ...}, false where absent.
local pre, suf, tf, ef = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
for i = 5, #ARGV do
  local h = redis.call('HMGET', pre .. ARGV[i] .. suf, tf, ef)
  out[#out + 1] = h[1]
  out[#out + 1] = h[2]
end
return out
""")

SEQUENCE = Script("sequence", r"""#!lua flags=no-writes
-- ARGV: min, max, limit (-1: all; the newest when newest = '1'), newest ('1'|'0'),
-- then per timeline: tier letter, timeline key, hash prefix, hash suffix.
-- Returns {tier, id, step, type, reward, ...} per action whose hash exists, each
-- timeline in (step, id) order (newest first when newest = '1'); reward false when
-- absent. The caller merges the timelines.
local lo, hi, limit, newest = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local out = {}
for t = 5, #ARGV, 4 do
  local tier, tl, pre, suf = ARGV[t], ARGV[t + 1], ARGV[t + 2], ARGV[t + 3]
  local r
  local extra = {}
  if limit >= 0 then extra = {'LIMIT', 0, limit} end
  if newest then
    r = redis.call('ZRANGE', tl, hi, lo, 'BYSCORE', 'REV', 'WITHSCORES', unpack(extra))
  else
    r = redis.call('ZRANGE', tl, lo, hi, 'BYSCORE', 'WITHSCORES', unpack(extra))
  end
  for i = 1, #r, 2 do
    local h = redis.call('HMGET', pre .. r[i] .. suf, 'action_type', 'reward')
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
""")

TIMELINE = Script("timeline_text", r"""#!lua flags=no-writes
-- ARGV: timeline key. Every member and its score as one string, "id\nscore\nid\n...":
-- one bulk reply instead of a pair of replies per member.
return table.concat(redis.call('ZRANGE', ARGV[1], 0, -1, 'WITHSCORES'), '\n')
""")

ALL = (VECTORS, SEQUENCE, TIMELINE)
