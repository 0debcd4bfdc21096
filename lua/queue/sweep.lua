-- Sweep: evict, oldest heartbeat first, at most ARGV[2] people not seen for heartbeat_ttl_secs,
-- end expired admissions, measure the outflow, and tick the door.
-- Reads only the stale end of the heartbeat index, so its cost grows with the ghosts, not the queue.
-- Idempotent: a person evicted by one instance is no longer in the index for the next.
-- Returns {evicted, still waiting, live admissions}, or {-1} when the event no longer exists.
local batch = tonumber(ARGV[2])
local m = load_meta()
if not m then
  return {-1}
end
local now = now_ms()
local cutoff = now - tonumber(m.heartbeat_ttl_secs) * 1000
local pre = in_pre_queue(m, now)
local ghosts = redis.call('ZRANGEBYSCORE', HB, '-inf', cutoff, 'LIMIT', 0, batch)
for _, person in ipairs(ghosts) do
  redis.call('ZREM', WAIT, person)
  redis.call('ZREM', HB, person)
  local rec = redis.call('HGET', PEOPLE, person)
  if rec then
    redis.call('HSET', PEOPLE, person, 'e' .. string.sub(rec, 2))
    if pre then
      -- Ghosts of the pre-queue get no place in the draw.
      local _, seq = parse_record(rec)
      redis.call('ZREM', DRAW, seq)
    end
  end
end
if #ghosts > 0 then
  redis.call('HINCRBY', STATS, 'evicted', #ghosts)
end
redis.call('ZREMRANGEBYSCORE', ACTIVE, '-inf', now)
redis.call('HSET', META, 'outflow_rate', tostring(measure_outflow(now)))
door_tick(m, now)
return {#ghosts, redis.call('ZCARD', WAIT), redis.call('ZCARD', ACTIVE)}
