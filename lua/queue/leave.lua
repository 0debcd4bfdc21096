-- Leave: the person gives up their place; nobody counts them any more.
-- ARGV[2] person id, ARGV[3] the ticket's sequence.
-- Returns {'left'} when this call removed them, else their state as status spells it
-- ({'e'|'l'|'a'}), {'unknown'} or {'superseded'}.
local person, ticket_seq = ARGV[2], ARGV[3]
local rec = redis.call('HGET', PEOPLE, person)
if not rec then
  return {'unknown'}
end
local st, seq = parse_record(rec)
if seq ~= ticket_seq then
  return {'superseded'}
end
if st == 'w' then
  -- Out of the draw too while it is open; at the opening the draw is frozen.
  local m = load_meta()
  if m and in_pre_queue(m, now_ms()) then
    redis.call('ZREM', DRAW, seq)
  end
  redis.call('ZREM', WAIT, person)
  redis.call('ZREM', HB, person)
  redis.call('HSET', PEOPLE, person, 'l' .. string.sub(rec, 2))
  redis.call('HINCRBY', STATS, 'left', 1)
  return {'left'}
end
return {st}
