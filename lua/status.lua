-- Status: refresh the caller's heartbeat, tick the door, and answer their exact position,
-- in one round trip. ARGV[1] person id, ARGV[2] the ticket's sequence
-- Returns the standing ({'w', ...}, see lib.lua), {'a', admission_exp_ms}, or {'e'|'l'|'x'|'unknown'|'superseded'}.
local rec = redis.call('HGET', KEYS[5], ARGV[1])
if not rec then
  return {'unknown'}
end
local st, seq = parse_record(rec)
if seq ~= ARGV[2] then
  return {'superseded'}
end
local now = now_ms()
if st == 'w' then
  local m = load_meta()
  if not m then
    return {'unknown'}
  end
  redis.call('ZADD', KEYS[4], 'XX', now, ARGV[1])
  return standing(m, ARGV[1], now, nil, false)
end
if st == 'a' then
  local _, adm_exp = parse_admission(rec)
  if tonumber(adm_exp) <= now then
    return {'x'}
  end
  return {'a', tonumber(adm_exp)}
end
return {st}
