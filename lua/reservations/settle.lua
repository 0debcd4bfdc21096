-- Settle: writes results back. KEYS[1] work stream, then per result KEYS[2i] the person's stream
-- and KEYS[2i+1] the reservation. ARGV[2] group, ARGV[3] retention (s), then per result
-- ARGV[4+5(i-1)..] reservation id, work entry id, state, reason ('' for none), hold expiry
-- (unix ms, '' for none).
-- A reservation already settled keeps its result (a redelivery writes the same anyway); one
-- whose hash expired is not recreated. Either way it leaves the person's stream and its work
-- entry is acknowledged and deleted, so the stream holds only undone work.
-- Returns the ids of the reservations whose state this call wrote (so each result is counted
-- once, however many deliveries wrote it).
local WORK = KEYS[1]
local group, retention = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local changed = {}
for i = 1, (#KEYS - 1) / 2 do
  local person_stream, reservation = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 4 + 5 * (i - 1)
  local id, wid, state, reason = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if redis.call('HGET', reservation, 'state') == 'pending' then
    redis.call('HSET', reservation, 'state', state, 'reason', reason, 'settled', now,
      'hold_expires_at', ARGV[a + 4])
    redis.call('EXPIRE', reservation, retention)
    changed[#changed + 1] = id
  end
  drop_from_person(person_stream, id)
  done(WORK, group, wid)
end
return changed
