-- Count the unread entries of one feed for one device.
-- KEYS[1] feed stream, KEYS[2] feed meta
-- ARGV[1] epoch of the read state ('' = nothing read)  ARGV[2] watermark
-- ARGV[3] device  ARGV[4] now (unix ms)  ARGV[5] seqs read above the
-- watermark, comma-separated
-- An entry is unread when its seq is above the watermark (in the feed's
-- current epoch; another epoch's read state counts for nothing), not in
-- the read set, not expired (exp <= now) and meant for the device (no
-- device field, or this one).
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then return 0 end
local mark, read = 0, {}
if epoch == ARGV[1] then
  mark = tonumber(ARGV[2]) or 0
  for s in string.gmatch(ARGV[5], '%d+') do read[s] = true end
end
local start = '-'
if mark > 0 then start = '(' .. string.format('%d', mark) .. '-0' end
local device, now = ARGV[3], tonumber(ARGV[4])
local n = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], start, '+')) do
  local id = e[1]
  local seq = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
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
return n
