-- The queue scripts' keys and records, prepended (after lua/clock.lua) to every script in
-- lua/queue/. Key names: src/store/keys.rs. Every script takes the same KEYS, all carrying the
-- event's hash tag {ev:<id>}, so each runs on one slot:
local META = KEYS[1]     -- hash: the event's valves (state, ttls, tiers, rate, ...) and the door's
                         -- state (door_credit: released, not yet entered; door_tick_ms: last tick;
                         -- outflow_rate: the sweeper's measure)
local SEQ = KEYS[2]      -- string: the join sequence (INCR), the only source of queue order
local WAIT = KEYS[3]     -- zset: person -> seq, the people still waiting; rank + 1 is the position
local HB = KEYS[4]       -- zset: person -> last heartbeat (ms, store clock); the sweeper reads its
                         -- oldest end
local PEOPLE = KEYS[5]   -- hash: person -> "state|seq|iat|exp" (w waiting, e evicted, l left),
                         -- or "a|seq|iat|exp|admission_id|admission_exp_ms" once admitted
local STATS = KEYS[6]    -- hash: running totals (joined, evicted, left, admitted, redeemed)
local ACTIVE = KEYS[7]   -- zset: admission id -> expiry (ms): live admitted sessions
local ADMITS = KEYS[8]   -- zset: admission id -> admitted at (ms), the last minute: the outflow
local REDEEMED = KEYS[9] -- hash: admission id -> redeemed at (ms)
local AUDIT = KEYS[10]   -- stream: every change of the valves (capped); lives with META
local DRAW = KEYS[11]    -- zset: seq -> draw score, everyone in the pre-queue (DESIGN §18); frozen
                         -- at the opening: the draw's places, in order (its export)

-- The keys that drain away with the queue (all but META and AUDIT, which live until the event is
-- closed). redeem.lua may lengthen REDEEMED's TTL; keep_alive never shortens it below what a
-- live admission token needs (its target covers the admission TTL plus the slack).
local QUEUE_KEYS = {SEQ, WAIT, HB, PEOPLE, STATS, ACTIVE, ADMITS, REDEEMED, DRAW}

local function parse_record(rec)
  return string.match(rec, '^(%a)|(%d+)|(%d+)|(%d+)')
end

-- The place a ticket names: the person's record, state and sequence, or a refusal to answer
-- ({'unknown'}: no such person; {'superseded'}: they joined again since this ticket).
local function ticket_place(person, ticket_seq)
  local rec = redis.call('HGET', PEOPLE, person)
  if not rec then
    return nil, nil, nil, {'unknown'}
  end
  local st, seq = parse_record(rec)
  if seq ~= ticket_seq then
    return nil, nil, nil, {'superseded'}
  end
  return rec, st, seq, nil
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
  local v = redis.call('HMGET', META, 'state', 'opens_at', 'admission_rate', 'max_active',
    'door_credit', 'door_tick_ms', 'vip_size', 'fast_upto', 'fast_poll_ms', 'slow_poll_ms',
    'outflow_rate', 'heartbeat_ttl_secs', 'max_queue_len', 'ticket_ttl_secs', 'identity',
    'admission_ttl_secs', 'prequeue_opens_at', 'queueing', 'draw_seed')
  if not v[1] then
    return nil
  end
  return {state = v[1], opens_at = v[2], admission_rate = v[3], max_active = v[4],
    door_credit = v[5], door_tick_ms = v[6], vip_size = v[7], fast_upto = v[8],
    fast_poll_ms = v[9], slow_poll_ms = v[10], outflow_rate = v[11], heartbeat_ttl_secs = v[12],
    max_queue_len = v[13], ticket_ttl_secs = v[14], identity = v[15], admission_ttl_secs = v[16],
    prequeue_opens_at = v[17], queueing = v[18], draw_seed = v[19]}
end

-- Every queue key lives as long as the newest ticket (or admission) can be used, then drains
-- away. Refreshing eight TTLs costs eight calls, so it is done only when a probe key's TTL has
-- fallen a minute below the target, or the probe has none: the caller names the keys it may have
-- just created (Redis deletes an emptied sorted set, and re-creates it without a TTL).
local function keep_alive(seconds, probes)
  local stale = false
  for _, key in ipairs(probes) do
    if redis.call('TTL', key) <= seconds - 60 then
      stale = true
      break
    end
  end
  if not stale then
    return
  end
  for _, key in ipairs(QUEUE_KEYS) do
    redis.call('EXPIRE', key, seconds)
  end
end
