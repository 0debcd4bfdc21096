-- Create or update an event's valves. ARGV: field, value, field, value, ..., then the retention (s)
-- of a closed event as the last argument. Bumps the version so every instance can see a change.
-- The door is ticked first, so the time before the change is credited at the old rate.
local n = #ARGV - 1
local fields = {}
for i = 1, n do
  fields[i] = ARGV[i]
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  door_tick(now_ms())
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('HINCRBY', KEYS[1], 'version', 1)
if redis.call('HGET', KEYS[1], 'state') == 'closed' then
  -- A closed event's definition drains away with its queue.
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[#ARGV]))
else
  redis.call('PERSIST', KEYS[1])
end
return redis.call('HGET', KEYS[1], 'version')
