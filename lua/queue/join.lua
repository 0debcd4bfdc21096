-- Join: duplicate check, sequence, queue entry, heartbeat and every TTL in one atomic step.
-- ARGV[2] person id, ARGV[3] where the id comes from ('made', 'claimed': a caller's user_id,
-- 'signed': an enqueue token's sub), ARGV[4] key slack (s),
-- ARGV[5] and ARGV[6] a pre-queue place's sequence and draw score ('' and '' at first).
-- Returns {tag, seq, iat, exp, standing...} where tag is 'created' or 'existing' (an admitted
-- person's standing is just 'a'; a pre-queue person's 'p', opens_at, poll_ms), or {'no_event'},
-- {'claim_refused'}, {'token_required'}, {'not_open', state}, {'full'}.
-- In the pre-queue a new place takes two calls: the first takes a sequence and answers
-- {'draw', seq, seed}; the caller computes the draw score (HMAC-SHA256 of the seed and the
-- ticket's jti: door::draw_score, as Lua has no HMAC) and calls again with both. Should the
-- second call never come, a sequence number is skipped: nothing else is written.
local person, claim, slack, draw_seq, draw_score = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local m = load_meta()
if not m then
  return {'no_event'}
end
-- Each identity takes its own kind of id (twin: the in-process join): a caller's user_id only
-- where the event says user_id, a signed token's sub only where it says signed.
if (claim == 'claimed' and m.identity ~= 'user_id') or (claim == 'signed' and m.identity ~= 'signed') then
  return {'claim_refused'}
end

local now = now_ms()
local rec = redis.call('HGET', PEOPLE, person)
if rec then
  local st, seq, iat, exp = parse_record(rec)
  if st == 'a' and tonumber(select(2, parse_admission(rec))) <= now then
    -- An admission that expired unused is over, like a left place: joining again takes a new
    -- place at the back (the dead ticket would only say "join again").
    st = 'x'
  end
  if st == 'w' or st == 'a' then
    local answer = {'existing', tonumber(seq), tonumber(iat), tonumber(exp)}
    if st == 'w' and in_pre_queue(m, now) then
      table.insert(answer, 'p')
      table.insert(answer, tonumber(m.opens_at))
      table.insert(answer, tonumber(m.fast_poll_ms))
    elseif st == 'w' then
      for _, v in ipairs(standing(m, person, now, nil, false)) do
        table.insert(answer, v)
      end
    else
      table.insert(answer, 'a')
    end
    return answer
  end
  -- Evicted, left or admission expired: joining again takes a new place at the back.
end
-- A signed event's new places come from enqueue tokens only; a ticket it signed resumes above.
if claim == 'made' and m.identity == 'signed' then
  return {'token_required'}
end

local state = state_at(m, now)
local pre = in_pre_queue(m, now)
if state ~= 'open' and not pre then
  return {'not_open', state}
end
-- Everyone still waiting is ahead of a newcomer, who takes the highest sequence.
local waiting = redis.call('ZCARD', WAIT)
local max_len = tonumber(m.max_queue_len)
if max_len > 0 and waiting >= max_len then
  return {'full'}
end

local seq, score
if drawn_at(m, now) then
  if draw_seq == '' then
    return {'draw', redis.call('INCR', SEQ), m.draw_seed}
  end
  seq, score = tonumber(draw_seq), tonumber(draw_score)
  if pre then
    redis.call('ZADD', DRAW, score, seq)
  end
else
  seq = redis.call('INCR', SEQ)
  score = seq
end
local iat = math.floor(now / 1000)
local ticket_ttl = tonumber(m.ticket_ttl_secs)
local exp = iat + ticket_ttl
redis.call('ZADD', WAIT, score, person)
redis.call('ZADD', HB, now, person)
redis.call('HSET', PEOPLE, person, 'w|' .. seq .. '|' .. iat .. '|' .. exp)
-- Also makes sure the stats hash exists whenever TTLs are refreshed (leave and sweep add to it).
redis.call('HINCRBY', STATS, 'joined', 1)
-- WAIT and HB are created and emptied together; SEQ, PEOPLE and STATS live at least as long.
keep_alive(ticket_ttl + tonumber(slack), pre and {WAIT, DRAW} or {WAIT})
local answer = {'created', seq, iat, exp}
if pre then
  table.insert(answer, 'p')
  table.insert(answer, tonumber(m.opens_at))
  table.insert(answer, tonumber(m.fast_poll_ms))
  return answer
end
door_open_for_one(m, now)
-- By sequence, everyone waiting is ahead of a newcomer; by the draw, the rank says.
local position = waiting + 1
if score < 0 then
  position = nil
end
for _, v in ipairs(standing(m, person, now, position, false)) do
  table.insert(answer, v)
end
return answer
