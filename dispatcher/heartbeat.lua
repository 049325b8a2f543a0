-- Record that a dispatcher is alive and count the live ones, by Redis's clock
-- so that skewed hosts agree.
-- KEYS[1] the dispatchers sorted set (member: owner, score: unix ms)
-- ARGV[1] owner   ARGV[2] ms after which a silent dispatcher counts as gone
-- Returns the number of live dispatchers, the caller included.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
