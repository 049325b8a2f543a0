-- Remove an idle consumer from the group, but only while the caller holds
-- the stream's lease (so no one else reads it) and only if the consumer has
-- nothing pending: XGROUP DELCONSUMER throws pending entries away.
-- KEYS[1] ingest stream   KEYS[2] its lease
-- ARGV[1] lease owner     ARGV[2] group   ARGV[3] consumer
-- Returns 1 when removed, 0 when it has pending entries, -1 without the lease.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if #redis.call('XPENDING', KEYS[1], ARGV[2], '-', '+', 1, ARGV[3]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[2], ARGV[3])
return 1
