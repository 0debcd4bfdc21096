-- Ack: acknowledges and deletes work entries with nothing left to do (their reservation was
-- settled through another entry's delivery). In one step, so no entry is ever acknowledged but
-- left in the stream, where it would count as lag. KEYS[1] work stream; ARGV[1] group, then ids.
for i = 2, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return #ARGV - 1
