-- lib/agent_indices.lua: a part included by scripts (see agentmem/lua/loader.py).

-- The Z-order code of the grid cell of (x, y): agentmem.plans.grid.code, step for step.
local function grid_code(x, y, cell)
  local function c(v)
    local n = math.floor(v / cell) + 33554432
    if n < 0 then n = 0 elseif n > 67108863 then n = 67108863 end
    return n
  end
  local cx, cy = c(x), c(y)
  local code, w = 0, 1
  for _ = 1, 26 do
    code = code + (cx % 2) * w + (cy % 2) * 2 * w
    cx = math.floor(cx / 2)
    cy = math.floor(cy / 2)
    w = w * 4
  end
  return code
end
-- Is the action (fields t; f: the HMGET reply of its simulation_id, step_number,
-- action_type, action_target_id, reward, position_x and position_y, under the layout's
-- hash field names) in each agent-level index it belongs in (patterns of the timeline,
-- types, targets, rewards and grid; cell: the grid's cell size, 0 when the store keeps
-- no grids)?
-- need(family, present, add) records a miss and, when fixing, adds it. A grid entry
-- with another score than the position's code counts as missing (fix: rescored).
-- ixkind 'z': the types and targets keys are sorted sets scored by step (layout 4; an
-- entry with another score counts as missing, fix: rescored), else sets.
-- Returns the grid code (nil without a position).
local function agent_indices(t, id, f, p_tl, p_ty, p_tg, p_rw, p_gr, cell, ixkind, need)
  local k = render(p_tl, t)
  need('timeline', call('ZSCORE', k, id), function() call('ZADD', k, f[2], id) end)
  local function member(name, key)
    if ixkind == 'z' then
      local s = call('ZSCORE', key, id)
      need(name, s and tonumber(s) == tonumber(f[2]), function() call('ZADD', key, f[2], id) end)
    else
      need(name, call('SISMEMBER', key, id) == 1, function() call('SADD', key, id) end)
    end
  end
  member('types', render(p_ty, t))
  if f[4] then member('targets', render(p_tg, t)) end
  if f[5] then
    local kr = render(p_rw, t)
    need('rewards', call('ZSCORE', kr, id), function() call('ZADD', kr, f[5], id) end)
  end
  local px, py = tonumber(f[6]), tonumber(f[7])
  if not (px and py) or cell == 0 then return nil end  -- cell 0: a store without grids
  local code = grid_code(px, py, cell)
  local kg = render(p_gr, t)
  local s = call('ZSCORE', kg, id)
  need('grid', s and tonumber(s) == code, function() call('ZADD', kg, code, id) end)
  return code
end
