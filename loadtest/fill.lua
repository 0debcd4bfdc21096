-- bench.sh's and prequeue.sh's filler: puts ARGV[1] people straight into an event's queue, as
-- join.lua would, for the queue sizes too big to join through HTTP in a benchmark's time (1M
-- waiting) and for ghosts.
-- KEYS as every queue script's (see lua/queue/lib.lua; DRAW, the eleventh, only with a salt);
-- ARGV[1] count, ARGV[2] heartbeat age (ms: 0 for live people, more than the event's heartbeat
-- TTL for ghosts), ARGV[3] ticket TTL (s), ARGV[4] optional: a salt, to put them in the
-- pre-queue instead, each placed by a draw score in [-2^53, 0) as door::draw_score gives (Lua has
-- no HMAC: SHA-1 of the salt and the sequence stands in; it is as uniform for a benchmark, but
-- the admin export's check would not find these places) and added to DRAW.
-- People are named `fill-<seq>`; nobody holds their tickets. Returns the last sequence.
local count, age, ttl, salt = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local iat = math.floor(now / 1000)
local first = redis.call('INCRBY', KEYS[2], count) - count + 1
-- The first 53 bits of a hex digest, exactly (a double holds 53 bits), less 2^53.
local function draw_score(hex)
  return tonumber(string.sub(hex, 1, 7), 16) * 2 ^ 25
    + math.floor(tonumber(string.sub(hex, 8, 14), 16) / 8) - 2 ^ 53
end
for seq = first, first + count - 1 do
  local person = 'fill-' .. seq
  local score = seq
  if salt then
    score = draw_score(redis.sha1hex(salt .. ':' .. seq))
    redis.call('ZADD', KEYS[11], score, seq)
  end
  redis.call('ZADD', KEYS[3], score, person)
  redis.call('ZADD', KEYS[4], now - age, person)
  redis.call('HSET', KEYS[5], person, 'w|' .. seq .. '|' .. iat .. '|' .. (iat + ttl))
end
redis.call('HINCRBY', KEYS[6], 'joined', count)
for i = 2, 6 do
  redis.call('EXPIRE', KEYS[i], ttl + 3600)
end
if salt then
  redis.call('EXPIRE', KEYS[11], ttl + 3600)
end
return first + count - 1
