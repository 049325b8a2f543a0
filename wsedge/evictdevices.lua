-- Evict devices past a user's cap: delete their ACK positions.
-- KEYS[1]: the user's device set (keys.Devices: member device, score last
-- connect in unix ms); KEYS[2]: the user's presence hash; KEYS[2+i]: the
-- acks hash of the i-th device in ARGV.
-- ARGV: device, score, device, score, ...: the devices chosen, with the
-- score each had then. A device that connected again since (its score
-- moved) or is online keeps its positions.
-- Returns the devices evicted.
local evicted = {}
for i = 1, #ARGV, 2 do
  local device = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], device)
  if score and tonumber(score) == tonumber(ARGV[i + 1])
      and redis.call('HEXISTS', KEYS[2], device) == 0 then
    redis.call('ZREM', KEYS[1], device)
    redis.call('DEL', KEYS[2 + (i + 1) / 2])
    evicted[#evicted + 1] = device
  end
end
return evicted
