#!lua flags=allow-oom
-- delete: remove records (their hashes, in every tier given) with every index entry.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: nsec, then nsec sections (lib/unindex.lua): hash_key id nix <indices> retired nextra <set keys>
-- Reply: the number of hashes deleted; {'\0WRONGTYPE', key} when an index key holds another type (nothing deleted)
-- Each section whose hash exists: its index entries are rendered from the stored hash and
-- removed (counters decremented, a count at 0 deleted), the retired mark raised, the hash
-- deleted; the record id is removed from the extra sets (pins) once any hash was deleted.
-- flags=allow-oom: it runs at maxmemory too (it frees more than the retired mark takes),
-- so that a writer can discard actions while Redis refuses writes (OOM).
--!include lib/unindex.lua
local pos, found = 2, {}
for s = 1, tonumber(ARGV[1]) do
  local sec
  sec, pos = section(pos)
  local flat = redis.call('HGETALL', sec.key)
  if #flat > 0 then
    local h = as_map(flat)
    local ops = entries(sec, h)
    local bad = wrong_type(ops)
    if bad then return {'\0WRONGTYPE', bad} end
    found[#found + 1] = {sec, h, ops}
  end
end
for _, f in ipairs(found) do
  local sec, h, ops = f[1], f[2], f[3]
  unindex(ops, {})
  redis.call('DEL', sec.key)
  drop_values(ops)
  retire(sec, h)
end
if #found > 0 then
  for _, f in ipairs(found) do
    for _, k in ipairs(f[1].extra) do redis.call('SREM', k, f[1].id) end
  end
end
return #found
