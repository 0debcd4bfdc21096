-- Redeem: the sale backend takes over an admitted person, exactly once. Ends the live session,
-- so the door can let the next person in. ARGV[2] admission id, ARGV[3] key slack (s),
-- ARGV[4] the admission's expiry (unix s, from the verified token).
-- The redeemed record is kept as long as the token it guards, even when the event's other keys
-- have drained away, so a token is never redeemed twice.
-- Returns {'redeemed'} the first time, {'already'} after.
local admission, slack, token_exp = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
if redis.call('HSETNX', REDEEMED, admission, now) == 0 then
  return {'already'}
end
redis.call('ZREM', ACTIVE, admission)
-- Counted while the event's figures exist: a hash made here would have no TTL.
if redis.call('EXISTS', STATS) == 1 then
  redis.call('HINCRBY', STATS, 'redeemed', 1)
end
-- The record must outlive the token it guards.
local keep = math.max(token_exp - math.floor(now / 1000), 0) + slack
if redis.call('TTL', REDEEMED) < keep then
  redis.call('EXPIRE', REDEEMED, keep)
end
return {'redeemed'}
