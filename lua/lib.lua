-- Shared helpers, prepended to every script when it is loaded (see src/store/redis.rs).
-- Every script takes the same KEYS, all carrying the event's hash tag {ev:<id>}, so each runs on one slot:
--   KEYS[1] meta     hash: the event's valves (state, ttls, tiers, rate, ...) and the door's state
--                    (door_credit: people released but not yet entered; door_tick_ms: last tick)
--   KEYS[2] seq      string: the join sequence (INCR), the only source of queue order
--   KEYS[3] wait     zset: person -> seq, the people still waiting; rank + 1 is the exact position
--   KEYS[4] hb       zset: person -> last heartbeat (ms, store clock); the sweeper reads its oldest end
--   KEYS[5] people   hash: person -> "state|seq|iat|exp" (w waiting, e evicted, l left),
--                    or "a|seq|iat|exp|admission_id|admission_exp_ms" once admitted
--   KEYS[6] stats    hash: running totals (joined, evicted, left, admitted, redeemed)
--   KEYS[7] active   zset: admission id -> expiry (ms): live admitted sessions
--   KEYS[8] admits   zset: admission id -> admitted at (ms), the last minute: the measured outflow
--   KEYS[9] redeemed hash: admission id -> redeemed at (ms)
--   KEYS[10] audit   stream: every change of the valves (capped); lives with the definition (meta)

-- How far back the measured outflow looks (ms).
local OUTFLOW_WINDOW_MS = 60000

-- The store's clock, in milliseconds. Scripts replicate their effects (Redis 7), so TIME is allowed.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function parse_record(rec)
  return string.match(rec, '^(%a)|(%d+)|(%d+)|(%d+)')
end

local function parse_admission(rec)
  return string.match(rec, '^a|%d+|%d+|%d+|([^|]+)|(%d+)$')
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

-- Every queue key (2..9) lives as long as the newest ticket (or admission) can be used, then drains
-- away. The definition (meta) and its audit trail live until the event is closed.
local function keep_alive(seconds)
  for i = 2, 9 do
    redis.call('EXPIRE', KEYS[i], seconds)
  end
end

-- The state in force at `now`: a scheduled event with `opens_at` (unix s, 0: none) opens by itself, on the
-- store's clock, at the same instant for every gateway.
local function state_at(now)
  local m = redis.call('HMGET', KEYS[1], 'state', 'opens_at')
  if m[1] == 'scheduled' and tonumber(m[2] or '0') > 0 and tonumber(m[2]) * 1000 <= now then
    return 'open', tonumber(m[2]) * 1000
  end
  return m[1], nil
end

-- Advances the door to `now` and returns its window (how many people from the head may enter),
-- the event's state and the measured outflow (people/s over the last minute). Ticks from any
-- number of gateways are serialised by Redis and credit only the store-clock time elapsed since
-- the previous tick, so together they never release more than admission_rate allows.
local function door_tick(now)
  local m = redis.call('HMGET', KEYS[1], 'admission_rate', 'max_active', 'door_credit', 'door_tick_ms')
  local rate, max_active = tonumber(m[1]), tonumber(m[2])
  local credit = tonumber(m[3]) or 0
  local last = tonumber(m[4]) or now
  local state, opened_at = state_at(now)
  if opened_at then
    -- No credit for the time before a scheduled opening.
    last = math.max(last, opened_at)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
  if state == 'open' and now > last then
    credit = credit + (now - last) * rate / 1000
  end
  -- Never release more people than are waiting, nor more than the live sessions leave room for.
  local room = max_active - redis.call('ZCARD', KEYS[7])
  local cap = math.max(0, math.min(room, redis.call('ZCARD', KEYS[3])))
  if credit > cap then
    credit = cap
  end
  redis.call('HSET', KEYS[1], 'door_credit', tostring(credit), 'door_tick_ms', now)
  local window = 0
  if state == 'open' then
    window = math.floor(credit)
  end
  return window, state, credit
end

-- People admitted per second, measured over the last minute (or since the first admission, if
-- more recent); 0 until there are two admissions, since one says nothing about a rate.
local function outflow(now)
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - OUTFLOW_WINDOW_MS)
  local count = redis.call('ZCARD', KEYS[8])
  if count < 2 then
    return 0
  end
  local first = redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')
  local span = math.max(now - tonumber(first[2]), 1000)
  return count * 1000 / span
end

-- Seconds until a waiting person at `position` can expect to be let in, or -1 when unknown.
-- Outside the window it is unknown while the door releases nobody (not open, or rate 0);
-- otherwise the measured outflow, or the configured rate before there is one.
local function eta(position, window, now)
  if position <= window then
    return 0
  end
  if state_at(now) ~= 'open' then
    return -1
  end
  local configured = tonumber(redis.call('HGET', KEYS[1], 'admission_rate'))
  if configured <= 0 then
    return -1
  end
  local rate = outflow(now)
  if rate <= 0 then
    rate = configured
  end
  return math.ceil((position - window) / rate)
end

-- The answer for a waiting person: {'w', position, tier, poll_ms, window, eta}
local function standing(person, now)
  local window = door_tick(now)
  local position = redis.call('ZRANK', KEYS[3], person) + 1
  local tier, poll = tier_of(position, KEYS[1])
  return {'w', position, tier, poll, window, eta(position, window, now)}
end
