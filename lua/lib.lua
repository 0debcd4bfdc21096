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
-- (The reservation scripts, reserve.lua and the worker's, take their own KEYS: see reserve.lua.)

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

-- Every valve and door field a script may need, in ONE read of the meta hash (each redis.call
-- costs about a microsecond inside Redis; status runs on every poll). nil when the event is gone.
-- The names are spelled out and the result built by one constructor, rather than from a table
-- of names filled in a loop (a table built on every call, and rehashed five times as it grows):
-- about 0.5 µs of the status script's ~11 (redis-benchmark, 100k waiting).
local function load_meta()
  local v = redis.call('HMGET', KEYS[1], 'state', 'opens_at', 'admission_rate', 'max_active',
    'door_credit', 'door_tick_ms', 'vip_size', 'fast_upto', 'fast_poll_ms', 'slow_poll_ms',
    'outflow_rate', 'heartbeat_ttl_secs', 'max_queue_len', 'ticket_ttl_secs', 'identity',
    'admission_ttl_secs')
  if not v[1] then
    return nil
  end
  return {state = v[1], opens_at = v[2], admission_rate = v[3], max_active = v[4],
    door_credit = v[5], door_tick_ms = v[6], vip_size = v[7], fast_upto = v[8],
    fast_poll_ms = v[9], slow_poll_ms = v[10], outflow_rate = v[11], heartbeat_ttl_secs = v[12],
    max_queue_len = v[13], ticket_ttl_secs = v[14], identity = v[15], admission_ttl_secs = v[16]}
end

-- The state in force at `now`: a scheduled event with `opens_at` (unix s, 0: none) opens by
-- itself, on the store's clock, at the same instant for every gateway. Also returns the opening
-- instant (ms) when that happened.
local function state_at(m, now)
  local opens_at = tonumber(m.opens_at or '0')
  if m.state == 'scheduled' and opens_at > 0 and opens_at * 1000 <= now then
    return 'open', opens_at * 1000
  end
  return m.state, nil
end

-- Tier and poll interval for a position.
local function tier_of(m, position)
  if position <= tonumber(m.vip_size) then
    return 'vip', tonumber(m.fast_poll_ms)
  elseif position <= tonumber(m.fast_upto) then
    return 'fast', tonumber(m.fast_poll_ms)
  end
  return 'slow', tonumber(m.slow_poll_ms)
end

-- Every queue key (2..9) lives as long as the newest ticket (or admission) can be used, then drains
-- away. The definition (meta) and its audit trail live until the event is closed. Refreshing
-- eight TTLs costs eight calls, so it is done only when a probe key's TTL has fallen a minute
-- below the target, or the probe has none: the caller names the keys it may have just created
-- (Redis deletes an emptied sorted set, and re-creates it without a TTL).
local function keep_alive(seconds, probes)
  local stale = false
  for _, i in ipairs(probes) do
    if redis.call('TTL', KEYS[i]) <= seconds - 60 then
      stale = true
      break
    end
  end
  if not stale then
    return
  end
  for i = 2, 9 do
    redis.call('EXPIRE', KEYS[i], seconds)
  end
end

-- Advances the door to `now` and returns its window: how many people from the head may enter.
-- Ticks from any number of gateways are serialised by Redis and credit only the store-clock time
-- elapsed since the previous tick, so together they never release more than admission_rate
-- allows. Updates m.door_credit.
local function door_tick(m, now)
  local rate, max_active = tonumber(m.admission_rate), tonumber(m.max_active)
  local credit = tonumber(m.door_credit) or 0
  local last = tonumber(m.door_tick_ms) or now
  local state, opened_at = state_at(m, now)
  if opened_at then
    -- No credit for the time before a scheduled opening.
    last = math.max(last, opened_at)
  end
  if state == 'open' and now > last then
    credit = credit + (now - last) * rate / 1000
  end
  -- Never release more people than are waiting, nor more than the live sessions leave room for.
  -- Expired sessions are not counted (the sweeper removes them).
  local active = redis.call('ZCOUNT', KEYS[7], '(' .. now, '+inf')
  local cap = math.max(0, math.min(max_active - active, redis.call('ZCARD', KEYS[3])))
  if credit > cap then
    credit = cap
  end
  redis.call('HSET', KEYS[1], 'door_credit', tostring(credit), 'door_tick_ms', now)
  m.door_credit = credit
  if state == 'open' then
    return math.floor(credit)
  end
  return 0
end

-- The door's window at `now` for a person at `position`, without writing: status runs on every
-- poll, so it reads the last persisted tick (the sweeper, enter and every valve change persist
-- one, at least every sweep interval) and adds the credit since. The cap (room under max_active,
-- people waiting) only ever lowers the window, so it is read only when the person could be
-- inside it. Gives the same answer door_tick would, without its three calls.
local function door_peek(m, now, position)
  local state, opened_at = state_at(m, now)
  if state ~= 'open' then
    return 0
  end
  local credit = tonumber(m.door_credit) or 0
  local last = tonumber(m.door_tick_ms) or now
  if opened_at then
    last = math.max(last, opened_at)
  end
  if now > last then
    credit = credit + (now - last) * tonumber(m.admission_rate) / 1000
  end
  local window = math.floor(credit)
  if position > window then
    return window
  end
  local active = redis.call('ZCOUNT', KEYS[7], '(' .. now, '+inf')
  local cap = math.max(0, math.min(tonumber(m.max_active) - active, redis.call('ZCARD', KEYS[3])))
  return math.min(window, cap)
end

-- Seconds until a waiting person at `position` can expect to be let in, or -1 when unknown.
-- Outside the window it is unknown while the door releases nobody (not open, or rate 0);
-- otherwise the measured outflow (kept in meta by the sweeper), or the configured rate before
-- there is one.
local function eta(m, position, window, now)
  if position <= window then
    return 0
  end
  local configured = tonumber(m.admission_rate)
  if state_at(m, now) ~= 'open' or configured <= 0 then
    return -1
  end
  local rate = tonumber(m.outflow_rate or '0')
  if rate <= 0 then
    rate = configured
  end
  return math.ceil((position - window) / rate)
end

-- People admitted per second over the last minute (or since the first admission, if more
-- recent); 0 until there are two admissions, since one says nothing about a rate. Trims the
-- window: run by the sweeper, which stores the result in meta for status to read.
local function measure_outflow(now)
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - OUTFLOW_WINDOW_MS)
  local count = redis.call('ZCARD', KEYS[8])
  if count < 2 then
    return 0
  end
  local first = redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')
  local span = math.max(now - tonumber(first[2]), 1000)
  return count * 1000 / span
end

-- The answer for a waiting person at `position` (nil: look it up):
-- {'w', position, tier, poll_ms, window, eta}. With `persist`, the door's tick is written (enter
-- does, before letting anyone in); without, it is only read (status, join).
local function standing(m, person, now, position, persist)
  position = position or (redis.call('ZRANK', KEYS[3], person) + 1)
  local window
  if persist then
    window = door_tick(m, now)
  else
    window = door_peek(m, now, position)
  end
  local tier, poll = tier_of(m, position)
  return {'w', position, tier, poll, window, eta(m, position, window, now)}
end
