-- Enter: a person inside the door's window moves from waiting to active and gets an admission.
-- Idempotent: entering again returns the same admission.
-- ARGV[1] person id, ARGV[2] the ticket's sequence, ARGV[3] a fresh admission id (used only when
-- admitting now), ARGV[4] "vip_only" when the local burst limiter is exhausted: then only the
-- vip tier may enter (the bypass skips the limiter, never the door), ARGV[5] key slack (s).
-- Returns {'admitted', admission_id, admission_exp_ms, 'new'|'existing'}, the standing of a person
-- not yet inside the window ({'w', ...}), {'limited'}, or a gone state as status does.
local person = ARGV[1]
local rec = redis.call('HGET', KEYS[5], person)
if not rec then
  return {'unknown'}
end
local st, seq = parse_record(rec)
if seq ~= ARGV[2] then
  return {'superseded'}
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
redis.call('ZADD', KEYS[4], 'XX', now, person)
local answer = standing(m, person, now, nil, true)
local position, window = answer[2], answer[5]
if ARGV[4] == 'vip_only' and answer[3] ~= 'vip' then
  return {'limited'}
end
if position > window then
  return answer
end

local adm_id = ARGV[3]
local adm_ttl = tonumber(m.admission_ttl_secs)
local adm_exp = now + adm_ttl * 1000
redis.call('ZREM', KEYS[3], person)
redis.call('ZREM', KEYS[4], person)
redis.call('HSET', KEYS[1], 'door_credit', tostring(m.door_credit - 1))
redis.call('ZADD', KEYS[7], adm_exp, adm_id)
redis.call('ZADD', KEYS[8], now, adm_id)
-- "w|seq|iat|exp" becomes "a|seq|iat|exp|admission_id|admission_exp_ms".
redis.call('HSET', KEYS[5], person, 'a' .. string.sub(rec, 2) .. '|' .. adm_id .. '|' .. adm_exp)
redis.call('HINCRBY', KEYS[6], 'admitted', 1)
keep_alive(math.max(adm_ttl, tonumber(m.ticket_ttl_secs)) + tonumber(ARGV[5]), {7, 8})
return {'admitted', adm_id, adm_exp, 'new'}
