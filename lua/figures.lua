-- Live figures of an event, read in one consistent step (no writes).
-- Returns {waiting, active, joined, evicted, left, admitted, redeemed, door_credit, outflow_per_min}.
local now = now_ms()
local totals = redis.call('HMGET', KEYS[6], 'joined', 'evicted', 'left', 'admitted', 'redeemed')
local answer = {redis.call('ZCARD', KEYS[3]), redis.call('ZCOUNT', KEYS[7], '(' .. now, '+inf')}
for i = 1, 5 do
  answer[#answer + 1] = tonumber(totals[i]) or 0
end
answer[#answer + 1] = redis.call('HGET', KEYS[1], 'door_credit') or '0'
answer[#answer + 1] = redis.call('ZCOUNT', KEYS[8], now - OUTFLOW_WINDOW_MS, '+inf')
return answer
