-- Create or update an event's valves, and append the change to its audit trail, atomically.
-- ARGV[1] retention (s) of a closed event, ARGV[2] who (admin token id), ARGV[3] audit length,
-- then field, value, field, value, ...
-- Bumps the version. The door is ticked first, so the time before the change is credited at the
-- old rate. Returns {version, changes as JSON}.
local now = now_ms()
local m = load_meta()
local existed = m ~= nil
if existed then
  door_tick(m, now)
else
  -- The door's clock starts now: joins and polls only read it (see door_peek).
  redis.call('HSET', KEYS[1], 'door_credit', '0', 'door_tick_ms', now)
end
local changes = {}
local changed = false
for i = 4, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', KEYS[1], field)
  if old ~= value then
    changes[field] = {old = old or cjson.null, new = value}
    changed = true
  end
  redis.call('HSET', KEYS[1], field, value)
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
local encoded = '{}'
if changed then
  encoded = cjson.encode(changes)
end
if changed or not existed then
  redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[3], '*',
    'at', now, 'by', ARGV[2], 'version', version, 'changes', encoded)
end
if redis.call('HGET', KEYS[1], 'state') == 'closed' then
  -- A closed event's definition and audit trail drain away with its queue.
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
  redis.call('EXPIRE', KEYS[10], tonumber(ARGV[1]))
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[10])
end
return {version, encoded}
