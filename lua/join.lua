-- Join: duplicate check, sequence, queue entry, heartbeat and every TTL in one atomic step.
-- ARGV[1] person id, ARGV[2] "claimed" when the id came from the caller, ARGV[3] key slack (s)
-- Returns {tag, seq, iat, exp, standing...} where tag is 'created' or 'existing'.
local person = ARGV[1]
local m = load_meta()
if not m then
  return {'no_event'}
end
if ARGV[2] == 'claimed' and m.identity ~= 'user_id' then
  return {'claim_refused'}
end

local now = now_ms()
local rec = redis.call('HGET', KEYS[5], person)
if rec then
  local st, seq, iat, exp = parse_record(rec)
  if st == 'w' or st == 'a' then
    local answer = {'existing', tonumber(seq), tonumber(iat), tonumber(exp)}
    if st == 'w' then
      for _, v in ipairs(standing(m, person, now, nil, false)) do
        table.insert(answer, v)
      end
    else
      table.insert(answer, 'a')
    end
    return answer
  end
  -- Evicted or left: joining again takes a new place at the back.
end

local state = state_at(m, now)
if state ~= 'open' then
  return {'not_open', state}
end
-- Everyone still waiting is ahead of a newcomer, who takes the highest sequence.
local waiting = redis.call('ZCARD', KEYS[3])
local max_len = tonumber(m.max_queue_len)
if max_len > 0 and waiting >= max_len then
  return {'full'}
end

local seq = redis.call('INCR', KEYS[2])
local iat = math.floor(now / 1000)
local ticket_ttl = tonumber(m.ticket_ttl_secs)
local exp = iat + ticket_ttl
redis.call('ZADD', KEYS[3], seq, person)
redis.call('ZADD', KEYS[4], now, person)
redis.call('HSET', KEYS[5], person, 'w|' .. seq .. '|' .. iat .. '|' .. exp)
-- Also makes sure the stats hash exists whenever TTLs are refreshed (leave and sweep add to it).
redis.call('HINCRBY', KEYS[6], 'joined', 1)
-- wait and hb are created and emptied together; seq, people and stats live at least as long.
keep_alive(ticket_ttl + tonumber(ARGV[3]), {3})
local answer = {'created', seq, iat, exp}
for _, v in ipairs(standing(m, person, now, waiting + 1, false)) do
  table.insert(answer, v)
end
return answer
