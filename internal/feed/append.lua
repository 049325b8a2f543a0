-- Append notifications to feeds, one request after the other, in order.
-- Each request is checked against what the requests before it wrote, so a
-- feed may appear many times in one call.
--
-- Per request i (from 0), KEYS[2i+1..2i+2]: feed stream, feed meta hash
-- ARGV[1] maxlen (approximate)  ARGV[2] feed ttl seconds  ARGV[3] idem ttl seconds
-- ARGV[4] now (unix seconds)    ARGV[5] refresh the feed's TTL once at most
--                               this many of its seconds are left
-- ARGV[6] new epoch, for any feed this call creates or resets
-- then per request i, ARGV[7+9i..15+9i]:
--   channel, 'src:' .. source stream, source entry id or '',
--   'i:' .. idempotency key or '', type, ts (unix ms), exp (unix ms) or '',
--   device or '', data
-- Returns {appended, seq, epoch} for each request, flattened: appended is 1,
-- or 0 for a duplicate (seq is then the original's when known, else 0).
-- A failing command (WRONGTYPE...) ends the call with its error; the
-- requests before it stay appended.
--
-- The stream's entries have id '<seq>-0' and fields type, ts, data, and
-- exp and device when set. Each append publishes epoch, seq, type, ts, exp
-- and device, each followed by '\n', then data, on the channel (SPUBLISH on
-- Redis Cluster: the Go side swaps the command, see shardedAppendScript).
--
-- The meta hash holds epoch, seq, expires (unix seconds when the stream and
-- the meta expire, as last set), dx (the last seq with exp or device set), src:<source stream> (the last source entry
-- id appended from it), and i:<idempotency key> = '<unix seconds>:<seq>'
-- for the keys appended, with ip, where the pruning of those stands (see
-- prune; metas written before ip may still hold an unused ic).
--
-- Both keys always get their TTL together: when either is new, or once at
-- most ARGV[5] seconds are left, so with ARGV[5] = 7/8 of the TTL a feed
-- expires between 7/8 of the TTL and the TTL after its last append. Set
-- against the deadline rather than the last refresh, a longer TTL in a new
-- configuration applies at the next append.
--
-- An idempotency key is a duplicate for ARGV[3] seconds after it was
-- appended, as long as the feed lives. Every 64th append of a feed also
-- walks on through its keys (HSCAN COUNT 128: about two keys for each
-- append) and deletes those past that, so a feed keeps the keys of about
-- its last ARGV[3] seconds, whatever its rate. A round of that walk also
-- notes the oldest key it kept; until that one is past the window, the
-- walk does not run at all (a feed younger than the window, or whose keys
-- are all recent, has nothing to delete).
--
-- A feed whose stream is gone (deleted, evicted) while its meta is not
-- starts again at seq 1 in a new epoch, and keeps its source positions
-- and idempotency keys: what it appended before is still a duplicate.
local argv, keys = ARGV, KEYS
local call, unpack, tonumber, tostring = redis.call, unpack, tonumber, tostring
local find, sub, byte = string.find, string.sub, string.byte
local maxlen, feedTTL, nowText, newEpoch = argv[1], argv[2], argv[4], argv[6]
local now, refreshBelow = tonumber(nowText), tonumber(argv[5])
local expiresText = tostring(now + tonumber(feedTTL))
-- an idempotency key appended at this time or before is past its window
local cutoff = now - tonumber(argv[3])
local cutoffText = tostring(cutoff)
local cutoffKey = cutoffText .. ';' -- ';' comes after ':'

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

-- stamp returns the time in an idempotency key's value ('<unix s>:<seq>')
-- as a number and as text, and where its ':' is; nothing when malformed.
local function stamp(v)
  local c = find(v, ':', 1, true)
  if not c then return end
  local text = sub(v, 1, c - 1)
  local t = tonumber(text)
  if t then return t, text, c end
end

-- live returns the seq in an idempotency key's value, or nil when the key
-- is past its window.
local function live(v)
  local t, _, c = stamp(v)
  if t and t > cutoff then return tonumber(sub(v, c + 1)) end
end

-- expired reports whether an idempotency key's value is past its window.
local function expired(v)
  if find(v, ':', 1, true) == #cutoffText + 1 then return v < cutoffKey end
  return not live(v)
end

-- prune deletes the idempotency keys past their window among the next
-- ones of meta, and returns the meta fields to set (HSET's arguments, from
-- the key), or nil when there is nothing to do. Where the pruning stands
-- is one field, ip = '<cursor>,<im>,<io>': the walk's HSCAN cursor, the
-- oldest time among the keys it kept so far in this round of the walk, and,
-- set when a round ends, the oldest time among the keys it kept then (every
-- key the meta held through the round was seen, so none is older, but for
-- keys appended while a round went on, whose time is at most the round's
-- end). Until io is past the window, no key can be, and prune only reads
-- ip; once it is, the walk runs and io is left empty until the round ends.
-- Either time may be empty.
local function prune(meta)
  local p = call('HGET', meta, 'ip') or ''
  local cursor, imText = '0', ''
  local c1 = find(p, ',', 1, true)
  local c2 = c1 and find(p, ',', c1 + 1, true)
  if c2 then
    local io = tonumber(sub(p, c2 + 1))
    if io and io > cutoff then return nil end
    cursor, imText = sub(p, 1, c1 - 1), sub(p, c1 + 1, c2 - 1)
  end
  local r = call('HSCAN', meta, cursor, 'MATCH', 'i:*', 'COUNT', '128')
  local kv, del = r[2], {meta}
  local oldest = tonumber(imText)
  for j = 1, #kv, 2 do
    local v = kv[j+1]
    if expired(v) then
      del[#del+1] = kv[j]
    else
      local t, text = stamp(v)
      if t and (not oldest or t < oldest) then oldest, imText = t, text end
    end
  end
  if #del > 1 then call('HDEL', unpack(del)) end
  if r[1] == '0' then -- the round is over
    if not oldest then imText = nowText end
    return {meta, 'ip', '0,,' .. imText}
  end
  return {meta, 'ip', r[1] .. ',' .. imText .. ','}
end

-- xadd adds request a's entry with id; with nomk it does not create a
-- missing stream and returns false instead.
local function xadd(stream, nomk, id, a)
  local exp, device = argv[a+6], argv[a+7]
  if exp == '' and device == '' then -- the usual case, without a table
    if nomk then
      return call('XADD', stream, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, id,
        'type', argv[a+4], 'ts', argv[a+5], 'data', argv[a+8])
    end
    return call('XADD', stream, 'MAXLEN', '~', maxlen, id,
      'type', argv[a+4], 'ts', argv[a+5], 'data', argv[a+8])
  end
  local args = {stream}
  if nomk then args[#args+1] = 'NOMKSTREAM' end
  args[#args+1] = 'MAXLEN'; args[#args+1] = '~'; args[#args+1] = maxlen; args[#args+1] = id
  args[#args+1] = 'type'; args[#args+1] = argv[a+4]
  args[#args+1] = 'ts'; args[#args+1] = argv[a+5]
  args[#args+1] = 'data'; args[#args+1] = argv[a+8]
  if exp ~= '' then args[#args+1] = 'exp'; args[#args+1] = exp end
  if device ~= '' then args[#args+1] = 'device'; args[#args+1] = device end
  return call('XADD', unpack(args))
end

-- The meta fields of the previous request's feed as it left them (epoch,
-- seq, expires, src:<its source stream>): the caller puts a feed's
-- requests next to each other, so a feed's meta is read once per call.
local cached, cachedMeta, cachedSrc

-- append runs one request; a is the index of its first ARGV. It returns
-- appended (1 or 0), seq and epoch.
local function append(stream, meta, a)
  local srcF, srcID, idemF = argv[a+1], argv[a+2], argv[a+3]
  local m, seen = cached, nil
  if meta ~= cachedMeta or srcF ~= cachedSrc then
    if idemF ~= '' then
      m = call('HMGET', meta, 'epoch', 'seq', 'expires', srcF, idemF)
      seen = m[5]
    else
      m = call('HMGET', meta, 'epoch', 'seq', 'expires', srcF)
    end
    cached, cachedMeta, cachedSrc = m, meta, srcF
  elseif idemF ~= '' then
    seen = call('HGET', meta, idemF)
  end
  local epoch, expires = m[1], tonumber(m[3])
  if epoch then
    if seen then
      local seq = live(seen)
      if seq then return 0, seq, epoch end
    end
    if srcID ~= '' and m[4] and not after(srcID, m[4]) then return 0, 0, epoch end
  end

  local seq = (tonumber(m[2]) or 0) + 1
  local seqText, h = tostring(seq), nil -- h: more fields to set, if any
  if not epoch then
    -- a new feed, or a stream left without its meta: start afresh
    call('DEL', stream, meta)
    xadd(stream, false, '1-0', a)
    epoch, seq, seqText, expires, m[4] = newEpoch, 1, '1', nil, false
    h = {meta, 'epoch', epoch, 'dx', '0'}
  elseif not xadd(stream, true, seqText .. '-0', a) then
    -- the stream is gone (deleted, evicted): its history is lost, unless
    -- it never had any (seq 1)
    if seq > 1 then
      epoch, seq, seqText = newEpoch, 1, '1'
      h = {meta, 'epoch', epoch, 'dx', '0'}
    end
    xadd(stream, false, '1-0', a)
    expires = nil -- the new stream has no TTL yet
  elseif (seq + byte(epoch) + byte(meta, -7) + 7 * byte(meta, -8)) % 64 == 0 then
    -- every 64th append, at an offset taken from the epoch and the last
    -- two characters of the feed's tag (bytes -8 and -7 of '...}:meta'), so
    -- that feeds created together (a broadcast, a load test) do not all
    -- prune at once
    h = prune(meta)
  end

  -- the stream and the meta get their TTL together, so they expire together
  local refresh = (not expires) or expires - now <= refreshBelow
  -- dx: the last seq whose entry is for one device or expires, so that an
  -- unread count (internal/inbox) counts the entries after it without
  -- reading them
  local filtered = argv[a+6] ~= '' or argv[a+7] ~= ''
  if h or refresh or srcID == '' or idemF == '' or filtered then
    h = h or {meta}
    h[#h+1] = 'seq'; h[#h+1] = seqText
    if filtered then h[#h+1] = 'dx'; h[#h+1] = seqText end
    if srcID ~= '' then h[#h+1] = srcF; h[#h+1] = srcID end
    if idemF ~= '' then h[#h+1] = idemF; h[#h+1] = nowText .. ':' .. seqText end
    if refresh then h[#h+1] = 'expires'; h[#h+1] = expiresText end
    call('HSET', unpack(h))
  else
    call('HSET', meta, 'seq', seqText, srcF, srcID, idemF, nowText .. ':' .. seqText)
  end
  if refresh then
    call('EXPIRE', stream, feedTTL)
    call('EXPIRE', meta, feedTTL)
  end

  -- what HMGET would return now
  m[1], m[2] = epoch, seqText
  if refresh then m[3] = expiresText end
  if srcID ~= '' then m[4] = srcID end

  call('PUBLISH', argv[a], epoch .. '\n' .. seqText .. '\n' .. argv[a+4] .. '\n' .. argv[a+5] .. '\n' ..
    argv[a+6] .. '\n' .. argv[a+7] .. '\n' .. argv[a+8])
  return 1, seq, epoch
end

local out = {}
for i = 0, #keys / 2 - 1 do
  local ok, seq, epoch = append(keys[2*i+1], keys[2*i+2], 7 + 9*i)
  out[3*i+1], out[3*i+2], out[3*i+3] = ok, seq, epoch
end
return out
