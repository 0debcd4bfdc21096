-- Status: refresh the caller's heartbeat and answer their exact position, in one round trip.
-- ARGV[1] person id, ARGV[2] the ticket's sequence
local rec = redis.call('HGET', KEYS[5], ARGV[1])
if not rec then
  return {'unknown'}
end
local st, seq = parse_record(rec)
if seq ~= ARGV[2] then
  return {'superseded'}
end
if st ~= 'w' then
  return {st}
end
redis.call('ZADD', KEYS[4], 'XX', now_ms(), ARGV[1])
local position = redis.call('ZRANK', KEYS[3], ARGV[1]) + 1
local tier, poll = tier_of(position, KEYS[1])
return {st, position, tier, poll}
