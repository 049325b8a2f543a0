-- Mark entries of one feed read in a user's read state.
-- KEYS[1] the read-state hash
-- ARGV[1] feed name  ARGV[2] the feed's epoch, as the caller read it
-- ARGV[3] the feed's oldest retained seq (0 = none): seqs below it are gone
--         and fold into the watermark
-- ARGV[4] the watermark is at least this (everything up to it read; 0 none)
-- ARGV[5] most seqs kept above the watermark  ARGV[6] state TTL in seconds
-- ARGV[7] seqs to mark read, comma-separated
-- ARGV[8] an epoch the caller knows to be older than ARGV[2] ('' = none)
--
-- The script cannot read the feed's meta (the tenant feed's is in another
-- slot), so it never decides which of two epochs is current. State of
-- ARGV[2] (or none, or malformed) is added to; state of ARGV[8] is
-- replaced; state of any other epoch is left alone, since ARGV[2] may be
-- the older one (the feed lost its history after the caller read it).
-- Returns the epoch the state is in afterwards: ARGV[2] when the mark was
-- applied, the other epoch when nothing was written.
--
-- Then the watermark moves up over every read seq that follows it, so the
-- set holds only seqs past a gap.
local wf, sf = 'w:' .. ARGV[1], 's:' .. ARGV[1]
local cur = redis.call('HMGET', KEYS[1], wf, sf)
local epoch = ARGV[2]
local mark, set = 0, {}
if cur[1] then
  local c = string.find(cur[1], ':', 1, true)
  local had = c and c > 1 and string.sub(cur[1], 1, c - 1)
  if had == epoch then
    mark = tonumber(string.sub(cur[1], c + 1)) or 0
    if cur[2] then
      for s in string.gmatch(cur[2], '%d+') do set[#set+1] = tonumber(s) end
    end
  elseif had and had ~= ARGV[8] then
    return had
  end
end
local first, atLeast = tonumber(ARGV[3]) or 0, tonumber(ARGV[4]) or 0
if first > 1 and first - 1 > mark then mark = first - 1 end
if atLeast > mark then mark = atLeast end
for s in string.gmatch(ARGV[7], '%d+') do set[#set+1] = tonumber(s) end
table.sort(set)
local keep, last = {}, nil
for _, n in ipairs(set) do
  if n > mark and n ~= last then
    if n == mark + 1 and #keep == 0 then mark = n else keep[#keep+1] = n end
    last = n
  end
end
-- a run that now follows the watermark folds in too
local i = 1
while keep[i] and keep[i] == mark + 1 do mark = keep[i]; i = i + 1 end
local out = {}
for j = i, #keep do out[#out+1] = keep[j] end
local max = tonumber(ARGV[5])
if #out > max then
  mark = out[#out - max]
  local t = {}
  for j = #out - max + 1, #out do t[#t+1] = out[j] end
  out = t
end
local strs = {}
for j, n in ipairs(out) do strs[j] = string.format('%d', n) end
redis.call('HSET', KEYS[1], wf, epoch .. ':' .. string.format('%d', mark))
if #strs > 0 then
  redis.call('HSET', KEYS[1], sf, table.concat(strs, ','))
else
  redis.call('HDEL', KEYS[1], sf)
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return epoch
