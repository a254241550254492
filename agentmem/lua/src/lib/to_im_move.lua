-- lib/to_im_move.lua: a part included by scripts (see agentmem/lua/loader.py).
    if not good then
      refused[#refused + 1] = id
    else
      -- IM keeps the reward to 6 significant digits (the archive has it exactly); an
      -- action without a reward has none in IM either (absent, read back as None)
      local f = {imf.id, id, imf.sim, sim or '', imf.step, step, imf.agent, agent,
        imf.typ, typ, imf.imp, imp}
      if rwd then f[#f + 1] = imf.reward; f[#f + 1] = string.format('%.6g', tonumber(rwd))
      else redis.call('HDEL', ikey, imf.reward) end
      if tgt then f[#f + 1] = imf.tgt; f[#f + 1] = tgt end
      redis.call('HSET', ikey, unpack(f))
      if ttl > 0 then redis.call('EXPIRE', ikey, ttl) else redis.call('PERSIST', ikey) end
      redis.call('ZADD', itl, step, id)
      if retired ~= '' and sim then
        local mark = tonumber(redis.call('HGET', retired, sim))
        if not mark or tonumber(step) > mark then redis.call('HSET', retired, sim, step) end
      end
      redis.call('DEL', key)
      redis.call('ZREM', tl, id)
      redis.call('ZREM', rel, id)
      redis.call('ZREM', rw, id)
      redis.call('ZREM', grid, id)
      redis.call(ixrem, tpre .. typ .. tsuf, id)
      if tgt then redis.call(ixrem, xpre .. tgt .. xsuf, id) end
      if sim then
