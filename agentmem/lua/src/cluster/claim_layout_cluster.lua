#!lua
-- claim_layout_cluster: the layout check on a Redis Cluster.
-- KEYS: KEYS[1] the layout key (agentmem:layout)
-- ARGV: ARGV[1] the store's layout version, ARGV[2] '1' when every master is empty
-- Reply: the recorded version; else the store's, recorded when every master is empty;
-- else false
local v = redis.call('GET', KEYS[1])
if v then return v end
if ARGV[2] == '0' then return false end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
