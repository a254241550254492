#!lua
-- to_im: move actions of one agent from STM to IM (one server).
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: im_ttl, the key shapes and hash fields (Shapes.argv), n, n pairs (action id, importance), the retired marks key, the pinned set ('' none), the types/targets kind ('z' sorted sets, layout 4; else sets), n digests of the hashes as read ('' not compared)
-- Reply: {moved ids, missing ids, refused ids, pinned ids, changed ids}
-- ARGV: im_ttl, then the key shapes and the hash field names (see
-- agentmem/tiers/shapes.py Shapes.argv), then n and n pairs (action id, importance),
-- the retired marks key, the agent's pinned set, the kind of the types and targets keys,
-- then per pair the digest of its hash as the caller read it (lib/to_im_check.lua).
-- A pinned id stays where it is, untouched (reported in pinned ids); so does one whose
-- hash changed since the caller read it (changed ids).
--!include lib/to_im_check.lua
    local sa, sk, st, sb, sg
    if good and sim then
      sa, sk = sapre .. sim .. sasuf, sspre .. sim .. ssmid .. step .. sssuf
      st, sb = stpre .. sim .. stsuf, sbpre .. sim .. sbsuf
      sg = sgpre .. sim .. sgmid .. step .. sgsuf
      good = ok(sa, 'list') and ok(sk, 'set') and ok(st, 'zset') and ok(sb, 'hash')
        and ok(sg, 'zset')
    end
--!include lib/to_im_move.lua
        redis.call('LREM', sa, 1, id)
        redis.call('SREM', sk, id)
        redis.call('ZREM', sg, id)
        if redis.call('SCARD', sk) == 0 then redis.call('ZREM', st, step) end
        if redis.call('HINCRBY', sb, typ, -1) <= 0 then redis.call('HDEL', sb, typ) end
      end
      moved[#moved + 1] = id
    end
  end
end
if relsize then refill(rel, tl, relsize) end
return {moved, missing, refused, pinned, changed}
