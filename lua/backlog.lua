-- Backlog of an event's workers. KEYS[1] work stream, KEYS[2] dead-letter stream. ARGV[1] group.
-- Acknowledged entries are deleted (settle.lua), so the stream holds exactly the undelivered
-- entries plus the pending ones: lag = length - pending.
-- Returns {lag, pending, dead letters}.
local len = redis.call('XLEN', KEYS[1])
local pending = 0
if len > 0 then
  pending = tonumber(redis.call('XPENDING', KEYS[1], ARGV[1])[1])
end
return {len - pending, pending, redis.call('XLEN', KEYS[2])}
