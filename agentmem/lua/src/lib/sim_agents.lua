-- lib/sim_agents.lua: a part included by scripts (see agentmem/lua/loader.py).

-- The agents a simulation-level id {agent_id}-{step}-{rest} may belong to, nearest the
-- end first: what precedes each '-<digits>-' (that is '-<step>-' unless step is '').
local function sim_agents(id, step)
  local dashes, init, out = {}, 1, {}
  while true do
    local d = string.find(id, '-', init, true)
    if not d then break end
    dashes[#dashes + 1] = d
    init = d + 1
  end
  for k = #dashes - 1, 1, -1 do
    local s = string.sub(id, dashes[k] + 1, dashes[k + 1] - 1)
    if dashes[k] > 1 and string.match(s, '^%d+$') and (step == '' or s == step) then
      out[#out + 1] = string.sub(id, 1, dashes[k] - 1)
    end
  end
  return out
end

-- Whether a hash (HGETALL's flat reply) is an action of simulation sim: its
-- simulation id field (sf: the layout's name for it, 'simulation_id' when nil) equals
-- sim ('': any simulation). An id of a simulation's index may have been given again,
-- after its action left memory, to an action of another simulation: that hash is not
-- this simulation's action.
local function of_sim(h, sim, sf)
  if sim == '' then return true end
  sf = sf or 'simulation_id'
  for i = 1, #h, 2 do
    if h[i] == sf then return h[i + 1] == sim end
  end
  return false
end
