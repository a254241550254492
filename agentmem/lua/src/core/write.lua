#!lua
-- write: the generic atomic write of records with all their indices.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: one MessagePack array (agentmem/plans/writeargs.py, pack): nrec ttl id_field stamp_field nscope, scopes, records, probe keys, index groups (the layout is documented in agentmem/plans/writeargs.py); counts are integers, every other value a string
-- Reply: {stamp, changed positions and ids...}; or {'\0WRONGTYPE', keys...} or {'\0EXISTS', positions...} or {'\0UNSEEDED'} (the outbox group's marker does not hold its token) when nothing was written
-- Arguments: see agentmem/plans/writeargs.py. Checks everything first; writes only
-- when every record of the call can be written whole. A group 'O' (the dual writer's
-- outbox) lists the records' keys in the same atomic step (docs/durability.md).
-- one argument: the server makes one string of it, not one per value
local A = cmsgpack.unpack(ARGV[1])
local unpack, tonumber, call, byte = unpack, tonumber, redis.call, string.byte
local CH = 1000
local nrec, ttl, idf, stampf = tonumber(A[1]), tonumber(A[2]), A[3], A[4]
local nscope = tonumber(A[5])
-- scope s: A[6s] key prefix, A[6s+1] key suffix, A[6s+2] probe key, A[6s+3] retired key,
-- A[6s+4] and A[6s+5] the key around the id of a record that left (moved_to), or ''
local SB = 0  -- scope s's values: A[SB + 6s] ..
local G0, G0n = nil, 0  -- the groups are in A
local pos = 6 + 6 * nscope
--!include lib/write_body.lua
