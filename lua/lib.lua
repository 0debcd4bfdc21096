-- Shared helpers, prepended to every script when it is loaded (see src/store/redis.rs).
-- Every script takes the same KEYS, all carrying the event's hash tag {ev:<id>}, so each runs on one slot:
--   KEYS[1] meta    hash: the event's valves (state, ttls, tiers, ...)
--   KEYS[2] seq     string: the join sequence (INCR), the only source of queue order
--   KEYS[3] wait    zset: person -> seq, the people still waiting; rank + 1 is the exact position
--   KEYS[4] hb      zset: person -> last heartbeat (ms, store clock); the sweeper reads its oldest end
--   KEYS[5] people  hash: person -> "state|seq|iat|exp" (w waiting, e evicted, l left)
--   KEYS[6] stats   hash: running totals (joined, evicted, left)

-- The store's clock, in milliseconds. Scripts replicate their effects (Redis 7), so TIME is allowed.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function parse_record(rec)
  return string.match(rec, '^(%a)|(%d+)|(%d+)|(%d+)$')
end

-- Tier and poll interval for a position, from the event's valves.
local function tier_of(position, meta_key)
  local t = redis.call('HMGET', meta_key, 'vip_size', 'fast_upto', 'fast_poll_ms', 'slow_poll_ms')
  if position <= tonumber(t[1]) then
    return 'vip', tonumber(t[3])
  elseif position <= tonumber(t[2]) then
    return 'fast', tonumber(t[3])
  end
  return 'slow', tonumber(t[4])
end
