-- The connect's work in the user's slot, in one call: read the device's
-- ACK positions, register its presence, record its connect in the user's
-- device set, read the user feed's newest position when this edge has just
-- subscribed to it, and write the first positions of feeds the device has
-- none for. Every key is tagged with the user ({tenant:u:user}), so the
-- script runs on a Redis Cluster too.
--
-- KEYS[1] the device's acks hash   KEYS[2] the user's presence hash
-- KEYS[3] the user's device set    KEYS[4] the user feed's meta hash
-- ARGV[1] device   ARGV[2] presence value   ARGV[3] now (unix ms)
-- ARGV[4] TTL of the device set and the acks hash, seconds
-- ARGV[5] -(the device cap)-1: ZRANGE's end for the devices past the cap
-- ARGV[6] '1' to read the user feed's epoch and seq, else ''
-- ARGV[7] the user feed's name when its first position is the one just
--         read, else ''
-- ARGV[8..] feed name, position ("<epoch>:<seq>") pairs: first positions
--         the edge already knows
--
-- Returns {acks (HGETALL, flat), previous presence value or false,
-- devices past the cap (member, score, flat), user feed epoch or false,
-- its seq or false, then 1 or 0 per first position written, the user
-- feed's (ARGV[7]) first}. A first position is written with HSETNX: one
-- already there stays, and the HGETALL, which runs before, returns it.
local k_acks, k_presence, k_devices, k_meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local call = redis.call
local device = ARGV[1]

local acks = call('HGETALL', k_acks)
local prev = call('HGET', k_presence, device)
call('HSET', k_presence, device, ARGV[2])
call('ZADD', k_devices, ARGV[3], device)
call('EXPIRE', k_devices, ARGV[4])
local over = call('ZRANGE', k_devices, 0, ARGV[5], 'WITHSCORES')

local epoch, seq = false, false
if ARGV[6] == '1' then
  local m = call('HMGET', k_meta, 'epoch', 'seq')
  epoch, seq = m[1], m[2]
end

local out = {acks, prev, over, epoch, seq}
local wrote = false
if ARGV[7] ~= '' then
  -- a feed that does not exist yet: the device starts at its first entry
  local pos = '*:0'
  if epoch then pos = epoch .. ':' .. (seq or '0') end
  out[#out + 1] = call('HSETNX', k_acks, ARGV[7], pos)
  wrote = true
end
for i = 8, #ARGV, 2 do
  out[#out + 1] = call('HSETNX', k_acks, ARGV[i], ARGV[i + 1])
  wrote = true
end
if wrote then call('EXPIRE', k_acks, ARGV[4]) end
return out
