-- Enter: a person inside the door's window moves from waiting to active and gets an admission.
-- Idempotent: entering again returns the same admission.
-- ARGV[2] person id, ARGV[3] the ticket's sequence, ARGV[4] a fresh admission id (used only when
-- admitting now), ARGV[5] "vip_only" when the local burst limiter is exhausted: then only the
-- vip tier may enter (the bypass skips the limiter, never the door), ARGV[6] key slack (s).
-- Returns {'admitted', admission_id, admission_exp_ms, 'new'|'existing'}, the standing of a person
-- not yet inside the window ({'w', ...}), {'p', opens_at, poll_ms} in the pre-queue, {'limited'}, or a gone
-- state as status does.
local person, ticket_seq, new_id, only, slack = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local rec, st, seq, refusal = ticket_place(person, ticket_seq)
if refusal then
  return refusal
end
local now = now_ms()
if st == 'a' then
  local adm_id, adm_exp = parse_admission(rec)
  if tonumber(adm_exp) <= now then
    return {'x'}
  end
  return {'admitted', adm_id, tonumber(adm_exp), 'existing'}
end
if st ~= 'w' then
  return {st}
end

local m = load_meta()
if not m then
  return {'unknown'}
end
redis.call('ZADD', HB, 'XX', now, person)
if in_pre_queue(m, now) then
  return {'p', tonumber(m.opens_at), tonumber(m.fast_poll_ms)}
end
local answer = standing(m, person, now, nil, true)
local position, window = answer[2], answer[5]
if only == 'vip_only' and answer[3] ~= 'vip' then
  return {'limited'}
end
if position > window then
  return answer
end

local adm_ttl = tonumber(m.admission_ttl_secs)
local adm_exp = now + adm_ttl * 1000
redis.call('ZREM', WAIT, person)
redis.call('ZREM', HB, person)
if m.queueing ~= 'passthrough' then
  redis.call('HSET', META, 'door_credit', tostring(m.door_credit - 1))
end
redis.call('ZADD', ACTIVE, adm_exp, new_id)
redis.call('ZADD', ADMITS, now, new_id)
-- "w|seq|iat|exp" becomes "a|seq|iat|exp|admission_id|admission_exp_ms".
redis.call('HSET', PEOPLE, person, 'a' .. string.sub(rec, 2) .. '|' .. new_id .. '|' .. adm_exp)
redis.call('HINCRBY', STATS, 'admitted', 1)
keep_alive(math.max(adm_ttl, tonumber(m.ticket_ttl_secs)) + tonumber(slack), {ACTIVE, ADMITS})
return {'admitted', new_id, adm_exp, 'new'}
