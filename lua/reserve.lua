-- Reserve: records a reservation in one step (DESIGN semantics 9). The reservation scripts take
-- their own KEYS, every one with the event's hash tag {ev:<id>} (one slot, Redis Cluster safe):
--   vst:{ev:E}:meta            the event's valves (only checked for existence)
--   vst:{ev:E}:rsv:work        stream: the event's work, read by the workers' consumer group
--   vst:{ev:E}:rsv:dead        stream: entries given up after too many deliveries
--   vst:{ev:E}:rsv:p:<person>  stream: the person's pending reservations, oldest first (their
--                              requests stay in order; a worker applies an entry only after every
--                              older one of the same person). Created at their first order, not
--                              at join: a stream costs ~4.7 KB.
--   vst:{ev:E}:rsv:r:<id>      hash: person, state (pending|confirmed|rejected), reason, items, at
--   vst:{ev:E}:rsv:k:<n>:<person>:<key>  string "id|body hash": the idempotency key (n is the
--                              person's length, so no two (person, key) pairs share a name)
-- Every key expires RETENTION seconds after its last write (semantics 5).
--
-- KEYS[1] meta, KEYS[2] work, KEYS[3] person stream, KEYS[4] reservation (for the new id),
-- KEYS[5] idempotency key. ARGV[1] new reservation id, ARGV[2] person, ARGV[3] body hash,
-- ARGV[4] items ("sku:qty,..."), ARGV[5] most pending reservations per person,
-- ARGV[6] retention (s), ARGV[7] consumer group.
-- Returns {'created', id}, {'existing', id}, {'conflict'}, {'too_many'} or {'no_event'}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'no_event'}
end
local known = redis.call('GET', KEYS[5])
if known then
  local id, hash = string.match(known, '^([^|]+)|(.*)$')
  if hash ~= ARGV[3] then
    return {'conflict'}
  end
  return {'existing', id}
end
if redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[5]) then
  return {'too_many'}
end
local now = now_ms()
local id, retention = ARGV[1], tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- The group is born with the stream, in the same step, so the stream never exists without
  -- the group (a worker's XGROUP CREATE MKSTREAM would make a stream with no TTL).
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[7], '0', 'MKSTREAM')
end
local wid = redis.call('XADD', KEYS[2], '*', 'rid', id, 'person', ARGV[2], 'items', ARGV[4], 'at', now)
redis.call('XADD', KEYS[3], '*', 'rid', id, 'wid', wid, 'items', ARGV[4], 'at', now)
redis.call('HSET', KEYS[4], 'person', ARGV[2], 'state', 'pending', 'items', ARGV[4], 'at', now)
redis.call('SET', KEYS[5], id .. '|' .. ARGV[3], 'EX', retention)
for i = 2, 4 do
  redis.call('EXPIRE', KEYS[i], retention)
end
return {'created', id}
