-- lib/bytewise.lua: a part included by scripts (see agentmem/lua/loader.py).

-- Strings in byte order, whatever the server's collation locale. Lua's < on strings is
-- strcoll, and Redis and Valkey take LC_COLLATE from the environment they start in
-- (setlocale(LC_COLLATE, "")): started under en_US.UTF-8, 'a-b' < 'aa' is false and
-- 'B' < 'a' too, while sorted sets, the client and the cursors a script hands out order
-- by bytes. BYTEWISE: < is byte order here (the C, POSIX and C.UTF-8 locales): each
-- string of BW_PROBE comes before the next in byte order, and a collating locale puts
-- some pair otherwise (it ignores punctuation or case first, or ranks single high
-- bytes or multibyte characters by its own table: review 121 found a forced
-- ja_JP.ISO-8859-1 build that keeps ASCII in byte order but not 0x93 and 0xd0). Then
-- blt is <, and sort_ids table.sort; else both compare byte by byte (some 20x slower:
-- docs/configuration.md, "The server's locale").
local BW_PROBE = {'', '\1', '\31', ' ', '-', '.', '0', '9', 'A', 'B', 'Z', '_', 'a', 'a-',
  'a-b', 'aB', 'a_', 'aa', 'b', '~', '\127', '\128', '\147', '\160', '\187', '\194\128',
  '\195\167', '\206\169', '\208', '\224', '\240\159\152\128', '\255'}
local BYTEWISE = true
for bw_i = 2, #BW_PROBE do
  if not (BW_PROBE[bw_i - 1] < BW_PROBE[bw_i]) then BYTEWISE = false; break end
end

local bw_byte, bw_sub = string.byte, string.sub

-- whether a comes before b in byte order (a shorter string before its extensions)
local function blt(a, b)
  if BYTEWISE then return a < b end
  if a == b then return false end
  local n = #a
  if #b < n then n = #b end
  local i = 1
  while i + 7 <= n and bw_sub(a, i, i + 7) == bw_sub(b, i, i + 7) do i = i + 8 end
  while i <= n do
    local x, y = bw_byte(a, i), bw_byte(b, i)
    if x ~= y then return x < y end
    i = i + 1
  end
  return #a < #b
end

-- a list of strings sorted in byte order, in place
local function sort_ids(ids)
  if BYTEWISE then table.sort(ids) else table.sort(ids, blt) end
end
