-- The door and the queue's rules, prepended (after lib.lua) to every script in lua/queue/.
-- Twin: src/door.rs, function by function; the conformance test holds the two together.

-- How far back the measured outflow looks (ms). Twin: door::OUTFLOW_WINDOW_MS.
local OUTFLOW_WINDOW_MS = 60000

-- The state in force at `now`: a scheduled event with `opens_at` (unix s, 0: none) opens by
-- itself, on the store's clock, at the same instant for every gateway. Also returns the opening
-- instant (ms) when that happened. Twin: EventConfig::state_at.
local function state_at(m, now)
  local opens_at = tonumber(m.opens_at or '0')
  if m.state == 'scheduled' and opens_at > 0 and opens_at * 1000 <= now then
    return 'open', opens_at * 1000
  end
  return m.state, nil
end

-- Whether joins at `now` go into the pre-queue: a scheduled event between prequeue_opens_at and
-- opens_at. Twin: EventConfig::in_pre_queue.
local function in_pre_queue(m, now)
  local pre = tonumber(m.prequeue_opens_at or '0')
  return state_at(m, now) == 'scheduled' and pre > 0 and pre * 1000 <= now
end

-- Whether a new place at `now` is placed by the draw's rule rather than by sequence: in the
-- pre-queue, or whenever the event admits in random order. Twin: EventConfig::drawn_at.
local function drawn_at(m, now)
  return in_pre_queue(m, now) or (m.queueing == 'random' and state_at(m, now) == 'open')
end

-- The window of a door that lets everyone in (queueing: passthrough). Twin: door::EVERYONE.
local EVERYONE = 4503599627370496

-- Tier and poll interval for a position. Twin: EventConfig::tier_of.
local function tier_of(m, position)
  if position <= tonumber(m.vip_size) then
    return 'vip', tonumber(m.fast_poll_ms)
  elseif position <= tonumber(m.fast_upto) then
    return 'fast', tonumber(m.fast_poll_ms)
  end
  return 'slow', tonumber(m.slow_poll_ms)
end

-- The credit at `now`, uncapped: the stored credit plus what the time since the last tick earned
-- while open (no credit for the time before a scheduled opening). Twin: Door::earned.
local function door_earned(m, now)
  local credit = tonumber(m.door_credit) or 0
  local last = tonumber(m.door_tick_ms) or now
  local state, opened_at = state_at(m, now)
  if opened_at then
    last = math.max(last, opened_at)
  end
  if state == 'open' and now > last then
    credit = credit + (now - last) * tonumber(m.admission_rate) / 1000
  end
  return credit, state
end

-- Never release more people than are waiting, nor more than the live sessions leave room for.
-- Expired sessions are not counted (the sweeper removes them). Twin: Load::cap.
local function door_cap(m, now)
  local active = redis.call('ZCOUNT', ACTIVE, '(' .. now, '+inf')
  return math.max(0, math.min(tonumber(m.max_active) - active, redis.call('ZCARD', WAIT)))
end

-- Advances the door to `now`, persists it and returns its window: how many people from the head
-- may enter. Ticks from any number of gateways are serialised by Redis and credit only the
-- store-clock time elapsed since the previous tick, so together they never release more than
-- admission_rate allows. Sets m.door_credit to the unrounded credit. Twin: Door::tick.
local function door_tick(m, now)
  local credit, state = door_earned(m, now)
  credit = math.max(0, math.min(credit, door_cap(m, now)))
  redis.call('HSET', META, 'door_credit', tostring(credit), 'door_tick_ms', now)
  m.door_credit = credit
  if state ~= 'open' then
    return 0
  elseif m.queueing == 'passthrough' then
    return EVERYONE
  end
  return math.floor(credit)
end

-- Below capacity the room is invisible: a person who joins when nobody else waits, while the
-- door is open with room, is let in at once (the credit becomes at least one). A shut door
-- (rate 0) stays shut. Twin: Door::open_for_one.
local function door_open_for_one(m, now)
  if state_at(m, now) ~= 'open' or tonumber(m.admission_rate) <= 0 then
    return
  end
  if redis.call('ZCARD', WAIT) ~= 1 then
    return
  end
  if redis.call('ZCOUNT', ACTIVE, '(' .. now, '+inf') >= tonumber(m.max_active) then
    return
  end
  door_tick(m, now)
  if m.door_credit < 1 then
    m.door_credit = 1
    redis.call('HSET', META, 'door_credit', '1')
  end
end

-- The door's window at `now` for a person at `position`, without writing: status and join run
-- on every poll, so they read the last persisted tick (the sweeper, enter and every valve change
-- persist one, at least every sweep interval) and add the credit since. The cap only ever lowers
-- the window, so it is read only when the person could be inside it. Gives the same answer
-- door_tick would, without its writes. Twin: Door::peek.
local function door_peek(m, now, position)
  local credit, state = door_earned(m, now)
  if state ~= 'open' then
    return 0
  elseif m.queueing == 'passthrough' then
    return EVERYONE
  end
  local window = math.floor(credit)
  if position > window then
    return window
  end
  return math.min(window, door_cap(m, now))
end

-- Seconds until a waiting person at `position` can expect to be let in, or -1 when unknown.
-- Outside the window it is unknown while the door releases nobody (not open, or rate 0);
-- otherwise the measured outflow (kept in meta by the sweeper), or the configured rate before
-- there is one. Twin: door::eta.
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
-- Twin: door::outflow.
local function measure_outflow(now)
  redis.call('ZREMRANGEBYSCORE', ADMITS, '-inf', now - OUTFLOW_WINDOW_MS)
  local count = redis.call('ZCARD', ADMITS)
  if count < 2 then
    return 0
  end
  local first = redis.call('ZRANGE', ADMITS, 0, 0, 'WITHSCORES')
  local span = math.max(now - tonumber(first[2]), 1000)
  return count * 1000 / span
end

-- The answer for a waiting person at `position` (nil: look it up):
-- {'w', position, tier, poll_ms, window, eta, shown}: `shown` is 0 in random order, where
-- positions are not shown. With `persist`, the door ticks (enter does, before
-- letting anyone in); without, it is only peeked (status, join).
local function standing(m, person, now, position, persist)
  position = position or (redis.call('ZRANK', WAIT, person) + 1)
  local window
  if persist then
    window = door_tick(m, now)
  else
    window = door_peek(m, now, position)
  end
  local tier, poll = tier_of(m, position)
  local shown = 1
  if m.queueing == 'random' then
    shown = 0
  end
  return {'w', position, tier, poll, window, eta(m, position, window, now), shown}
end
