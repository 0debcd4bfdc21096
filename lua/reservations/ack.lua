-- Ack: acknowledges and deletes work entries with nothing left to do (their reservation was
-- settled through another entry's delivery). In one step, so no entry is ever acknowledged but
-- left in the stream, where it would count as lag. KEYS[1] work stream; ARGV[2] group, then ids.
local WORK, group = KEYS[1], ARGV[2]
for i = 3, #ARGV do
  done(WORK, group, ARGV[i])
end
return #ARGV - 2
