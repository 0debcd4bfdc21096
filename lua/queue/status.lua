-- Status: refresh the caller's heartbeat and answer their exact position, with the door's window
-- peeked (never ticked: see door_peek), in one round trip. In the pre-queue nobody has a position
-- yet: the answer is {'p', opens_at, poll_ms}.
-- ARGV[2] person id, ARGV[3] the ticket's sequence.
-- Returns the standing ({'w', ...}, see door.lua), {'a', admission_exp_ms}, or
-- {'e'|'l'|'x'|'unknown'|'superseded'}.
local person, ticket_seq = ARGV[2], ARGV[3]
local rec, st, seq, refusal = ticket_place(person, ticket_seq)
if refusal then
  return refusal
end
local now = now_ms()
if st == 'w' then
  local m = load_meta()
  if not m then
    return {'unknown'}
  end
  redis.call('ZADD', HB, 'XX', now, person)
  if in_pre_queue(m, now) then
    return {'p', tonumber(m.opens_at), tonumber(m.fast_poll_ms)}
  end
  return standing(m, person, now, nil, false)
end
if st == 'a' then
  local _, adm_exp = parse_admission(rec)
  if tonumber(adm_exp) <= now then
    return {'x'}
  end
  return {'a', tonumber(adm_exp)}
end
return {st}
