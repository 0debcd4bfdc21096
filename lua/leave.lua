-- Leave: the person gives up their place; nobody counts them any more.
-- ARGV[1] person id, ARGV[2] the ticket's sequence
local rec = redis.call('HGET', KEYS[5], ARGV[1])
if not rec then
  return {'unknown'}
end
local st, seq = parse_record(rec)
if seq ~= ARGV[2] then
  return {'superseded'}
end
if st == 'w' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], 'l' .. string.sub(rec, 2))
  redis.call('HINCRBY', KEYS[6], 'left', 1)
  return {'left'}
end
return {st}
