#!lua flags=no-writes
-- timeline_text: a timeline as one string.
-- KEYS: none: every key is built from ARGV (a cluster call is routed by its plan)
-- ARGV: timeline key
-- Reply: "id\nscore\nid\n..." (one bulk reply)
-- ARGV: timeline key. Every member and its score as one string, "id\nscore\nid\n...":
-- one bulk reply instead of a pair of replies per member.
return table.concat(redis.call('ZRANGE', ARGV[1], 0, -1, 'WITHSCORES'), '\n')
