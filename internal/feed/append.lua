-- Append one notification to a feed, atomically.
-- KEYS[1] feed stream, KEYS[2] feed meta hash, KEYS[3] idempotency marker
-- ARGV[1] channel        ARGV[2] maxlen (approximate)  ARGV[3] feed ttl seconds
-- ARGV[4] idem ttl secs  ARGV[5] source stream         ARGV[6] source entry id
-- ARGV[7] new epoch (used when the feed has none)      ARGV[8] type
-- ARGV[9] ts (unix ms)   ARGV[10] exp (unix ms or "")  ARGV[11] device or ""
-- ARGV[12] data          ARGV[13] "1" when KEYS[3] is a real idempotency key
-- Returns {1, seq, epoch} when appended, {0, seq, epoch} for a duplicate
-- (seq is the original's when known, else 0).
local stream, meta, idem = KEYS[1], KEYS[2], KEYS[3]

-- source ids are "<ms>-<n>"; true when a comes after b
local function after(a, b)
  local am, an = string.match(a, '^(%d+)-(%d+)$')
  local bm, bn = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return true end
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  return tonumber(an) > tonumber(bn)
end

local epoch = redis.call('HGET', meta, 'epoch')
if ARGV[13] == '1' then
  local prev = redis.call('GET', idem)
  if prev then return {0, tonumber(prev), epoch or ''} end
end

local srcField = 'src:' .. ARGV[5]
if epoch and ARGV[6] ~= '' then
  local last = redis.call('HGET', meta, srcField)
  if last and not after(ARGV[6], last) then return {0, 0, epoch} end
end

local lastSeq = tonumber(redis.call('HGET', meta, 'seq') or '0')
if (not epoch) or (lastSeq > 0 and redis.call('EXISTS', stream) == 0) then
  -- new feed, or its history is gone: start a new epoch from seq 1
  epoch = ARGV[7]
  redis.call('DEL', stream, meta)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
end

local seq = redis.call('HINCRBY', meta, 'seq', 1)
local fields = {'type', ARGV[8], 'ts', ARGV[9], 'data', ARGV[12]}
if ARGV[10] ~= '' then fields[#fields+1] = 'exp'; fields[#fields+1] = ARGV[10] end
if ARGV[11] ~= '' then fields[#fields+1] = 'device'; fields[#fields+1] = ARGV[11] end
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], seq .. '-0', unpack(fields))

if ARGV[6] ~= '' then redis.call('HSET', meta, srcField, ARGV[6]) end
if ARGV[13] == '1' then redis.call('SET', idem, seq, 'EX', ARGV[4]) end
redis.call('EXPIRE', stream, ARGV[3])
redis.call('EXPIRE', meta, ARGV[3])

redis.call('PUBLISH', ARGV[1], epoch .. '\n' .. seq .. '\n' .. ARGV[8] .. '\n' .. ARGV[9] .. '\n' ..
  ARGV[10] .. '\n' .. ARGV[11] .. '\n' .. ARGV[12])
return {1, seq, epoch}
