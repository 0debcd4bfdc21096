-- Create or update an event's valves, and append the change to its audit trail, atomically.
-- ARGV[2] retention (s) of a closed event, ARGV[3] who (admin token id), ARGV[4] audit length,
-- ARGV[5] a fresh draw seed (hex), kept only when the event has a pre-queue (or random order) and
-- no seed yet: it is fixed once, when first needed, and revealed at the opening (DESIGN §18),
-- then field, value, field, value, ...
-- Bumps the version. The door is ticked first, so the time before the change is credited at the
-- old rate. Returns {version, changes as JSON}.
local retention, by, audit_len, fresh_seed = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local m = load_meta()
local existed = m ~= nil
if existed then
  door_tick(m, now)
else
  -- The door's clock starts now: joins and polls only peek at it (see door_peek).
  redis.call('HSET', META, 'door_credit', '0', 'door_tick_ms', now)
end
-- Secrets (the enqueue keys) are written, never shown: the audit says only whether one is set.
-- Twin: the in-process put_event.
local function shown(field, value)
  if value and value ~= '' and string.sub(field, 1, 11) == 'enqueue_key' then
    return '(set)'
  end
  return value
end
local changes = {}
local changed = false
for i = 6, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', META, field)
  if old ~= value then
    changes[field] = {old = shown(field, old) or cjson.null, new = shown(field, value)}
    changed = true
  end
  redis.call('HSET', META, field, value)
end
-- Twin: EventConfig::needs_seed.
if tonumber(redis.call('HGET', META, 'prequeue_opens_at') or '0') > 0
    or redis.call('HGET', META, 'queueing') == 'random' then
  redis.call('HSETNX', META, 'draw_seed', fresh_seed)
end
local version = redis.call('HINCRBY', META, 'version', 1)
local encoded = '{}'
if changed then
  encoded = cjson.encode(changes)
end
if changed or not existed then
  redis.call('XADD', AUDIT, 'MAXLEN', '~', audit_len, '*',
    'at', now, 'by', by, 'version', version, 'changes', encoded)
end
if redis.call('HGET', META, 'state') == 'closed' then
  -- A closed event's definition and audit trail drain away with its queue.
  redis.call('EXPIRE', META, retention)
  redis.call('EXPIRE', AUDIT, retention)
else
  redis.call('PERSIST', META)
  redis.call('PERSIST', AUDIT)
end
return {version, encoded}
