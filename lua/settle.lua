-- Settle: writes results back. KEYS[1] work stream, then per result KEYS[2i] the person's stream
-- and KEYS[2i+1] the reservation. ARGV[1] group, ARGV[2] retention (s), then per result
-- ARGV[3+4(i-1)..] reservation id, work entry id, state, reason ('' for none).
-- A reservation already settled keeps its result (a redelivery writes the same anyway); one
-- whose hash expired is not recreated. Either way it leaves the person's stream and its work
-- entry is acknowledged and deleted, so the stream holds only undone work.
-- Returns the ids of the reservations whose state this call wrote (so each result is counted
-- once, however many deliveries wrote it).
local group, retention = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local changed = {}
for i = 1, (#KEYS - 1) / 2 do
  local person_key, res_key = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 3 + 4 * (i - 1)
  local id, wid, state, reason = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if redis.call('HGET', res_key, 'state') == 'pending' then
    redis.call('HSET', res_key, 'state', state, 'reason', reason, 'settled', now)
    redis.call('EXPIRE', res_key, retention)
    changed[#changed + 1] = id
  end
  for _, e in ipairs(redis.call('XRANGE', person_key, '-', '+')) do
    local f = e[2]
    for j = 1, #f, 2 do
      if f[j] == 'rid' and f[j + 1] == id then
        redis.call('XDEL', person_key, e[1])
      end
    end
  end
  redis.call('XACK', KEYS[1], group, wid)
  redis.call('XDEL', KEYS[1], wid)
end
return changed
