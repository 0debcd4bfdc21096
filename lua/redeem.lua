-- Redeem: the sale backend takes over an admitted person, exactly once. Ends the live session,
-- so the door can let the next person in. ARGV[1] admission id, ARGV[2] key slack (s),
-- ARGV[3] the admission's expiry (unix s, from the verified token).
-- Returns {'redeemed'} the first time, {'already'} after.
local now = now_ms()
if redis.call('HSETNX', KEYS[9], ARGV[1], now) == 0 then
  return {'already'}
end
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('HINCRBY', KEYS[6], 'redeemed', 1)
-- The record must outlive the token it guards.
local keep = math.max(tonumber(ARGV[3]) - math.floor(now / 1000), 0) + tonumber(ARGV[2])
if redis.call('TTL', KEYS[9]) < keep then
  redis.call('EXPIRE', KEYS[9], keep)
end
return {'redeemed'}
