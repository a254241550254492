#!lua
-- claim_layout: the layout check of a store's first plan, on one server.
-- KEYS: KEYS[1] the layout key (agentmem:layout)
-- ARGV: ARGV[1] the store's layout version ('1' records nothing)
-- Reply: the version the server records; else the store's, recorded when the database
-- is empty and the version is not 1; else false
local v = redis.call('GET', KEYS[1])
if v then return v end
if ARGV[1] == '1' or redis.call('DBSIZE') > 0 then return false end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
