-- Reserve: records a reservation in one step (DESIGN semantics 9).
-- KEYS[1] meta, KEYS[2] work stream, KEYS[3] the person's stream, KEYS[4] the reservation (for
-- the new id), KEYS[5] the idempotency key, KEYS[6] the event's redeemed admissions.
-- ARGV[2] new reservation id, ARGV[3] person, ARGV[4] body hash, ARGV[5] items
-- ("sku:qty,..."), ARGV[6] most pending reservations per person, ARGV[7] retention (s),
-- ARGV[8] consumer group, ARGV[9] the admission's id.
-- Returns {'created', id}, {'existing', id}, {'conflict'}, {'too_many'}, {'redeemed'} or
-- {'no_event'}.
local META, WORK, PERSON, RESERVATION, IDEMPOTENCY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local REDEEMED = KEYS[6]
local id, person, body_hash, items = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_open, retention, group = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local admission = ARGV[9]
if redis.call('EXISTS', META) == 0 then
  return {'no_event'}
end
-- A redeemed admission belongs to the sale backend now (twin: EventBook::reserve's caller).
if redis.call('HEXISTS', REDEEMED, admission) == 1 then
  return {'redeemed'}
end
local known = redis.call('GET', IDEMPOTENCY)
if known then
  local known_id, hash = string.match(known, '^([^|]+)|(.*)$')
  if hash ~= body_hash then
    return {'conflict'}
  end
  return {'existing', known_id}
end
if redis.call('XLEN', PERSON) >= max_open then
  return {'too_many'}
end
local now = now_ms()
if redis.call('EXISTS', WORK) == 0 then
  -- The group is born with the stream, in the same step, so the stream never exists without
  -- the group (a worker's XGROUP CREATE MKSTREAM would make a stream with no TTL).
  redis.call('XGROUP', 'CREATE', WORK, group, '0', 'MKSTREAM')
end
local wid = redis.call('XADD', WORK, '*', 'rid', id, 'person', person, 'items', items, 'at', now)
redis.call('XADD', PERSON, '*', 'rid', id, 'wid', wid, 'items', items, 'at', now)
redis.call('HSET', RESERVATION, 'person', person, 'state', 'pending', 'items', items, 'at', now)
redis.call('SET', IDEMPOTENCY, id .. '|' .. body_hash, 'EX', retention)
for _, key in ipairs({WORK, PERSON, RESERVATION}) do
  redis.call('EXPIRE', key, retention)
end
return {'created', id}
