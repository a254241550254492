-- lib/sort_rows.lua: a part included by scripts (see agentmem/lua/loader.py).
--!include lib/bytewise.lua

-- rows of {score, member, ...}: by score, then member (bytewise), both reversed with rev
local function sort_rows(rows, rev)
  if rev then
    table.sort(rows, function(x, y)
      if x[1] ~= y[1] then return x[1] > y[1] end
      return blt(y[2], x[2])
    end)
  else
    table.sort(rows, function(x, y)
      if x[1] ~= y[1] then return x[1] < y[1] end
      return blt(x[2], y[2])
    end)
  end
end
