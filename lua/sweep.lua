-- Sweep: evict, oldest heartbeat first, at most ARGV[1] people not seen for heartbeat_ttl_secs,
-- end expired admissions, measure the outflow, and tick the door.
-- Reads only the stale end of the heartbeat index, so its cost grows with the ghosts, not the queue.
-- Idempotent: a person evicted by one instance is no longer in the index for the next.
-- Returns {evicted, still waiting, live admissions}, or {-1} when the event no longer exists.
local m = load_meta()
if not m then
  return {-1}
end
local now = now_ms()
local cutoff = now - tonumber(m.heartbeat_ttl_secs) * 1000
local ghosts = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[1]))
for _, person in ipairs(ghosts) do
  redis.call('ZREM', KEYS[3], person)
  redis.call('ZREM', KEYS[4], person)
  local rec = redis.call('HGET', KEYS[5], person)
  if rec then
    redis.call('HSET', KEYS[5], person, 'e' .. string.sub(rec, 2))
  end
end
if #ghosts > 0 then
  redis.call('HINCRBY', KEYS[6], 'evicted', #ghosts)
end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
redis.call('HSET', KEYS[1], 'outflow_rate', tostring(measure_outflow(now)))
door_tick(m, now)
return {#ghosts, redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[7])}
