-- Leave: the person gives up their place; nobody counts them any more.
-- ARGV[2] person id, ARGV[3] the ticket's sequence.
-- Returns {'left'} when this call removed them, else their state as status spells it
-- ({'e'|'l'|'a'}), {'unknown'} or {'superseded'}.
local person, ticket_seq = ARGV[2], ARGV[3]
local rec, st, seq, refusal = ticket_place(person, ticket_seq)
if refusal then
  return refusal
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
