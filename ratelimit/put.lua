-- Replace the rules document and announce it.
-- KEYS[1]  the rules hash {yaml, version, updated_by, updated_at}
-- ARGV[1]  the YAML (already validated by the caller)
-- ARGV[2]  who
-- ARGV[3]  when (RFC 3339, UTC)
-- ARGV[4]  the version the caller read ("" = whatever is stored; "0" = none yet)
-- ARGV[5]  the channel that announces changes
-- Returns the new version, or the error "CONFLICT <current version>".
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= cur then
  return redis.error_reply('CONFLICT ' .. cur)
end
local v = cur + 1
redis.call('HSET', KEYS[1], 'yaml', ARGV[1], 'version', v, 'updated_by', ARGV[2], 'updated_at', ARGV[3])
redis.call('PUBLISH', ARGV[5], v)
return v
