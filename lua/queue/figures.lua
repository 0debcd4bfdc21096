-- Live figures of an event, read in one consistent step (no writes).
-- Returns {waiting, active, joined, evicted, left, admitted, redeemed, door_credit,
-- admitted in the last minute}.
local now = now_ms()
local totals = redis.call('HMGET', STATS, 'joined', 'evicted', 'left', 'admitted', 'redeemed')
local answer = {redis.call('ZCARD', WAIT), redis.call('ZCOUNT', ACTIVE, '(' .. now, '+inf')}
for i = 1, 5 do
  answer[#answer + 1] = tonumber(totals[i]) or 0
end
answer[#answer + 1] = redis.call('HGET', META, 'door_credit') or '0'
answer[#answer + 1] = redis.call('ZCOUNT', ADMITS, now - OUTFLOW_WINDOW_MS, '+inf')
return answer
