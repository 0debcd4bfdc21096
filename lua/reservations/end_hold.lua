-- End hold: shows how a hold ended (completed, released or expired), as the database decided.
-- KEYS[1] the reservation. ARGV[2] the final state, ARGV[3] retention (s).
-- Only a confirmed reservation changes (a hold ends once; an expired hash is not recreated).
-- Returns 1 when this call changed it, else 0. Twin: MemoryStore::end_hold.
local RESERVATION = KEYS[1]
local state, retention = ARGV[2], tonumber(ARGV[3])
if redis.call('HGET', RESERVATION, 'state') ~= 'confirmed' then
  return 0
end
redis.call('HSET', RESERVATION, 'state', state, 'ended', now_ms())
redis.call('EXPIRE', RESERVATION, retention)
return 1
