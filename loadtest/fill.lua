-- bench.sh's filler: puts ARGV[1] people straight into an event's queue, as join.lua would, for
-- the queue sizes too big to join through HTTP in a benchmark's time (1M waiting) and for ghosts.
-- KEYS as every queue script's (see lua/queue/lib.lua); ARGV[1] count, ARGV[2] heartbeat age (ms: 0 for live
-- people, more than the event's heartbeat TTL for ghosts), ARGV[3] ticket TTL (s).
-- People are named `fill-<seq>`; nobody holds their tickets. Returns the last sequence.
local count, age, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local iat = math.floor(now / 1000)
local first = redis.call('INCRBY', KEYS[2], count) - count + 1
for seq = first, first + count - 1 do
  local person = 'fill-' .. seq
  redis.call('ZADD', KEYS[3], seq, person)
  redis.call('ZADD', KEYS[4], now - age, person)
  redis.call('HSET', KEYS[5], person, 'w|' .. seq .. '|' .. iat .. '|' .. (iat + ttl))
end
redis.call('HINCRBY', KEYS[6], 'joined', count)
for i = 2, 6 do
  redis.call('EXPIRE', KEYS[i], ttl + 3600)
end
return first + count - 1
