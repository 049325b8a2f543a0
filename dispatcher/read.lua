-- Read new entries for the lease holder only. Checking the lease in the same
-- atomic step as XREADGROUP means a dispatcher that lost its lease (after a
-- long pause, say) can never take entries that the new holder would not see.
-- KEYS[1] ingest stream   KEYS[2] its lease
-- ARGV[1] lease owner     ARGV[2] group   ARGV[3] consumer   ARGV[4] count
-- Returns {-1} when the caller does not hold the lease, {1, entries} when it
-- read entries, {0, newest} when there was nothing new: newest is the
-- stream's newest id, from which a blocking XREAD can wait for more.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
local r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], '>')
if r then return {1, r[1][2]} end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then return {0, last[1][1]} end
return {0, '0-0'}
