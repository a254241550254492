#!lua
-- integrity_im: IM hashes missing from the IM timeline.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: mode, im_action pattern, im_timeline pattern, step field name, (agent_id, action_id) pairs
-- Reply: the pairs missing from the IM timeline; fix adds them
--!include lib/integrity_common.lua

-- ARGV: mode, im_action pattern, im_timeline pattern, the IM hash's field name of
-- step_number (the layout's name), then (agent_id, action_id) pairs. Returns the
-- (agent_id, action_id) pairs of existing IM hashes missing from the IM timeline;
-- fix: adds them, scored by their step_number.
local out = {}
for i = 5, #ARGV, 2 do
  local t = {agent_id = ARGV[i], action_id = ARGV[i + 1]}
  local f = redis.pcall('HGET', render(ARGV[2], t), ARGV[4])
  if type(f) == 'string' then
    local k = render(ARGV[3], t)
    if not call('ZSCORE', k, t.action_id) then
      out[#out + 1] = t.agent_id; out[#out + 1] = t.action_id
      if fix then call('ZADD', k, f, t.action_id) end
    end
  end
end
return out
