-- Count the unread entries of one feed for one device.
-- KEYS[1] feed stream, KEYS[2] feed meta
-- ARGV[1] epoch of the read state ('' = nothing read)  ARGV[2] watermark
-- ARGV[3] device  ARGV[4] now (unix ms)  ARGV[5] seqs read above the
-- watermark, comma-separated
-- An entry is unread when its seq is above the watermark (in the feed's
-- current epoch; another epoch's read state counts for nothing), not in
-- the read set, not expired (exp <= now) and meant for the device (no
-- device field, or this one).
--
-- A feed's stream holds consecutive seqs from its oldest retained entry to
-- meta's seq (appends add the next seq, trimming removes the oldest), and
-- meta's dx is the last seq of an entry with exp or device. So only the
-- entries up to dx are read; the ones after it are counted.
local m = redis.call('HMGET', KEYS[2], 'epoch', 'seq', 'dx')
if not m[1] then return 0 end
local mark, read = 0, {}
if m[1] == ARGV[1] then
  mark = tonumber(ARGV[2]) or 0
  for s in string.gmatch(ARGV[5], '%d+') do read[tonumber(s)] = true end
end
local last = tonumber(m[2]) or 0
-- a feed written before dx existed has none: read all of it
local dx = tonumber(m[3]) or last
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
if not head then return 0 end
local first = tonumber(string.sub(head[1], 1, string.find(head[1], '-', 1, true) - 1))
local lo = mark
if first - 1 > lo then lo = first - 1 end
if last <= lo then return 0 end
local n = 0
local scanTo = dx
if scanTo > last then scanTo = last end
if scanTo > lo then
  local device, now = ARGV[3], tonumber(ARGV[4])
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. string.format('%d', lo) .. '-0', string.format('%d', scanTo) .. '-0')) do
    local id = e[1]
    local seq = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
    if not read[seq] then
      local ok, f = true, e[2]
      for j = 1, #f, 2 do
        local k = f[j]
        if k == 'device' then
          if f[j+1] ~= '' and f[j+1] ~= device then ok = false end
        elseif k == 'exp' then
          local x = tonumber(f[j+1])
          if x and x <= now then ok = false end
        end
      end
      if ok then n = n + 1 end
    end
  end
  lo = scanTo
end
n = n + (last - lo)
for s in pairs(read) do
  if s > lo and s <= last then n = n - 1 end
end
return n
