-- Dead letter: gives up an entry that kept failing. KEYS[1] work stream, KEYS[2] dead-letter
-- stream, KEYS[3] the person's stream, KEYS[4] the reservation (both may be placeholders when the
-- entry could not be decoded). ARGV[1] group, ARGV[2] retention (s), ARGV[3] work entry id,
-- ARGV[4] reservation id ('' if unknown), ARGV[5] deliveries, ARGV[6] last error, ARGV[7] the
-- entry's raw fields, ARGV[8] most dead letters kept.
-- The reservation becomes rejected (reason failed) and leaves the person's stream, so the
-- person's later reservations do not wait behind it; the entry is acknowledged and deleted.
local now = now_ms()
local group, retention, wid, id = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[8]), '*', 'wid', wid, 'rid', id,
  'deliveries', ARGV[5], 'error', ARGV[6], 'raw', ARGV[7], 'at', now)
redis.call('EXPIRE', KEYS[2], retention)
if id ~= '' then
  if redis.call('HGET', KEYS[4], 'state') == 'pending' then
    redis.call('HSET', KEYS[4], 'state', 'rejected', 'reason', 'failed', 'settled', now)
  end
  for _, e in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
    local f = e[2]
    for j = 1, #f, 2 do
      if f[j] == 'rid' and f[j + 1] == id then
        redis.call('XDEL', KEYS[3], e[1])
      end
    end
  end
end
redis.call('XACK', KEYS[1], group, wid)
redis.call('XDEL', KEYS[1], wid)
return 1
