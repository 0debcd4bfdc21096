-- Dead letter: gives up an entry that kept failing. KEYS[1] work stream, KEYS[2] dead-letter
-- stream, KEYS[3] the person's stream, KEYS[4] the reservation (both may be placeholders when the
-- entry could not be decoded). ARGV[2] group, ARGV[3] retention (s), ARGV[4] work entry id,
-- ARGV[5] reservation id ('' if unknown), ARGV[6] deliveries, ARGV[7] last error, ARGV[8] the
-- entry's raw fields, ARGV[9] most dead letters kept.
-- The reservation becomes rejected (reason failed) and leaves the person's stream, so the
-- person's later reservations do not wait behind it; the entry is acknowledged and deleted.
local WORK, DEAD, PERSON, RESERVATION = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, retention, wid, id = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local deliveries, last_error, raw, kept = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local now = now_ms()
redis.call('XADD', DEAD, 'MAXLEN', '~', kept, '*', 'wid', wid, 'rid', id,
  'deliveries', deliveries, 'error', last_error, 'raw', raw, 'at', now)
redis.call('EXPIRE', DEAD, retention)
if id ~= '' then
  if redis.call('HGET', RESERVATION, 'state') == 'pending' then
    redis.call('HSET', RESERVATION, 'state', 'rejected', 'reason', 'failed', 'settled', now)
  end
  drop_from_person(PERSON, id)
end
done(WORK, group, wid)
return 1
