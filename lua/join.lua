-- Join: duplicate check, sequence, queue entry, heartbeat and every TTL in one atomic step.
-- ARGV[1] person id, ARGV[2] "claimed" when the id came from the caller, ARGV[3] key slack (s)
local person = ARGV[1]
local meta = redis.call('HMGET', KEYS[1], 'state', 'max_queue_len', 'ticket_ttl_secs', 'identity')
if not meta[1] then
  return {'no_event'}
end
if ARGV[2] == 'claimed' and meta[4] ~= 'user_id' then
  return {'claim_refused'}
end

local rec = redis.call('HGET', KEYS[5], person)
if rec then
  local st, seq, iat, exp = parse_record(rec)
  if st == 'w' then
    local position = redis.call('ZRANK', KEYS[3], person) + 1
    local tier, poll = tier_of(position, KEYS[1])
    return {'existing', st, tonumber(seq), tonumber(iat), tonumber(exp), position, tier, poll}
  end
  -- Evicted or left: joining again takes a new place at the back.
end

if meta[1] ~= 'open' then
  return {'not_open', meta[1]}
end
local max_len = tonumber(meta[2])
if max_len > 0 and redis.call('ZCARD', KEYS[3]) >= max_len then
  return {'full'}
end

local now = now_ms()
local seq = redis.call('INCR', KEYS[2])
local iat = math.floor(now / 1000)
local ticket_ttl = tonumber(meta[3])
local exp = iat + ticket_ttl
redis.call('ZADD', KEYS[3], seq, person)
redis.call('ZADD', KEYS[4], now, person)
redis.call('HSET', KEYS[5], person, 'w|' .. seq .. '|' .. iat .. '|' .. exp)
redis.call('HINCRBY', KEYS[6], 'joined', 1)
-- The queue's keys live as long as the newest ticket can be used, then drain away.
local keep = ticket_ttl + tonumber(ARGV[3])
for i = 2, 6 do
  redis.call('EXPIRE', KEYS[i], keep)
end
-- The newcomer has the highest sequence, so everyone still waiting is ahead of them.
local position = redis.call('ZCARD', KEYS[3])
local tier, poll = tier_of(position, KEYS[1])
return {'created', 'w', seq, iat, exp, position, tier, poll}
