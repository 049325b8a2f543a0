-- Append notifications to feeds, one request after the other, in order.
-- Each request is checked against what the requests before it wrote, so a
-- feed may appear many times in one call.
--
-- Per request i (from 0), KEYS[3i+1..3i+3]:
--   feed stream, feed meta hash, idempotency marker (the meta key itself
--   when the request has no idempotency key)
-- ARGV[1] maxlen (approximate)  ARGV[2] feed ttl seconds  ARGV[3] idem ttl seconds
-- ARGV[4] now (unix seconds)    ARGV[5] refresh the feed's TTL once at most
--                               this many of its seconds are left
-- ARGV[6] new epoch, for any feed this call creates or resets
-- then per request i, ARGV[7+8i..14+8i]:
--   channel, source stream, source entry id or "", type, ts (unix ms),
--   exp (unix ms) or "", device or "", data
-- Returns {appended, seq, epoch} for each request, flattened: appended is 1,
-- or 0 for a duplicate (seq is then the original's when known, else 0).
-- A failing command (WRONGTYPE...) ends the call with its error; the
-- requests before it stay appended.
--
-- The meta hash holds epoch, seq, src:<source stream> (the last source
-- entry id appended from it) and expires (unix seconds when the stream and
-- the meta expire, as last set). Both keys always get their TTL together:
-- when either is new, or once at most ARGV[5] seconds are left, so with
-- ARGV[5] = 7/8 of the TTL a feed expires between 7/8 of the TTL and the
-- TTL after its last append. Set against the deadline rather than the last
-- refresh, a longer TTL in a new configuration applies at the next append.
local argv, keys = ARGV, KEYS
local call, unpack, tonumber, tostring = redis.call, unpack, tonumber, tostring
local find, sub = string.find, string.sub
local maxlen, feedTTL, idemTTL = argv[1], argv[2], argv[3]
local now, refreshBelow, newEpoch = tonumber(argv[4]), tonumber(argv[5]), argv[6]
local expiresText = tostring(now + tonumber(feedTTL))

-- Globals are read into locals above, and numbers are turned into strings
-- once, with tostring, before they go to call (which would print them with
-- "%.17g", slowly): this script runs for every notification.

-- source ids are stream entry ids, "<ms>-<n>" in decimal without leading
-- zeros; true when a comes after b. One without a '-' counts as after.
local function after(a, b)
  if a == b then return false end
  local ia, ib = find(a, '-', 1, true), find(b, '-', 1, true)
  if not ia or not ib then return true end
  if ia ~= ib then return ia > ib end -- the longer <ms> is the larger
  if #a ~= #b and sub(a, 1, ia) == sub(b, 1, ib) then return #a > #b end
  return a > b
end

-- xadd adds request a's entry with id; with nomk it does not create a
-- missing stream and returns false instead.
local function xadd(stream, nomk, id, a)
  local exp, device = argv[a+5], argv[a+6]
  if exp == '' and device == '' then -- the usual case, without a table
    if nomk then
      return call('XADD', stream, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, id,
        'type', argv[a+3], 'ts', argv[a+4], 'data', argv[a+7])
    end
    return call('XADD', stream, 'MAXLEN', '~', maxlen, id,
      'type', argv[a+3], 'ts', argv[a+4], 'data', argv[a+7])
  end
  local args = {stream}
  if nomk then args[#args+1] = 'NOMKSTREAM' end
  args[#args+1] = 'MAXLEN'; args[#args+1] = '~'; args[#args+1] = maxlen; args[#args+1] = id
  args[#args+1] = 'type'; args[#args+1] = argv[a+3]
  args[#args+1] = 'ts'; args[#args+1] = argv[a+4]
  args[#args+1] = 'data'; args[#args+1] = argv[a+7]
  if exp ~= '' then args[#args+1] = 'exp'; args[#args+1] = exp end
  if device ~= '' then args[#args+1] = 'device'; args[#args+1] = device end
  return call('XADD', unpack(args))
end

-- The meta fields of the previous request's feed as it left them (epoch,
-- seq, expires, src:<its source stream>): the caller puts a feed's requests
-- next to each other, so a feed's meta is read once per call.
local cached, cachedMeta, cachedSrc

-- append runs one request; a is the index of its first ARGV. It returns
-- appended (1 or 0), seq and epoch.
local function append(stream, meta, idem, a)
  local srcID = argv[a+2]
  local srcField = 'src:' .. argv[a+1]
  local m = cached
  if meta ~= cachedMeta or srcField ~= cachedSrc then
    m = call('HMGET', meta, 'epoch', 'seq', 'expires', srcField)
    cached, cachedMeta, cachedSrc = m, meta, srcField
  end
  local epoch, expires = m[1], tonumber(m[3])
  if idem ~= meta then
    local prev = call('GET', idem)
    if prev then return 0, tonumber(prev), epoch or '' end
  end
  if epoch and srcID ~= '' and m[4] and not after(srcID, m[4]) then return 0, 0, epoch end

  local seq = (tonumber(m[2]) or 0) + 1
  local seqText = tostring(seq)
  local reset = false
  if not epoch then
    -- a new feed, or a stream left without its meta: start afresh
    call('DEL', stream, meta)
    reset = true
    xadd(stream, false, '1-0', a)
  elseif not xadd(stream, true, seqText .. '-0', a) then
    -- the stream is gone (deleted, expired): its history is lost, unless
    -- it never had any (seq 1)
    if seq > 1 then
      call('DEL', meta)
      reset = true
    end
    xadd(stream, false, '1-0', a)
    expires = nil -- the new stream has no TTL yet
  end
  if reset then epoch, seq, seqText, expires = newEpoch, 1, '1', nil end

  -- the stream and the meta get their TTL together, so they expire together
  local refresh = (not expires) or expires - now <= refreshBelow
  if reset or refresh or srcID == '' then
    local h = {meta, 'seq', seqText}
    if reset then h[#h+1] = 'epoch'; h[#h+1] = epoch end
    if srcID ~= '' then h[#h+1] = srcField; h[#h+1] = srcID end
    if refresh then h[#h+1] = 'expires'; h[#h+1] = expiresText end
    call('HSET', unpack(h))
  else
    call('HSET', meta, 'seq', seqText, srcField, srcID)
  end
  if refresh then
    call('EXPIRE', stream, feedTTL)
    call('EXPIRE', meta, feedTTL)
  end
  if idem ~= meta then call('SET', idem, seqText, 'EX', idemTTL) end

  -- what HMGET would return now
  m[1], m[2] = epoch, seqText
  if refresh then m[3] = expiresText end
  if srcID ~= '' then m[4] = srcID elseif reset then m[4] = false end

  call('PUBLISH', argv[a], epoch .. '\n' .. seqText .. '\n' .. argv[a+3] .. '\n' .. argv[a+4] .. '\n' ..
    argv[a+5] .. '\n' .. argv[a+6] .. '\n' .. argv[a+7])
  return 1, seq, epoch
end

local out = {}
for i = 0, #keys / 3 - 1 do
  local ok, seq, epoch = append(keys[3*i+1], keys[3*i+2], keys[3*i+3], 7 + 8*i)
  out[3*i+1], out[3*i+2], out[3*i+3] = ok, seq, epoch
end
return out
