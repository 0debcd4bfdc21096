-- Backlog of an event's workers. KEYS[1] work stream, KEYS[2] dead-letter stream. ARGV[2] group.
-- Acknowledged entries are deleted (settle.lua), so the stream holds exactly the undelivered
-- entries plus the pending ones: lag = length - pending.
-- Returns {lag, pending, dead letters}.
local WORK, DEAD, group = KEYS[1], KEYS[2], ARGV[2]
local len = redis.call('XLEN', WORK)
local pending = 0
if len > 0 then
  pending = tonumber(redis.call('XPENDING', WORK, group)[1])
end
return {len - pending, pending, redis.call('XLEN', DEAD)}
