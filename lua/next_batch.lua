-- Next batch for one worker (consumer-group semantics, at-least-once delivery).
-- KEYS[1] work stream. ARGV[1] group, ARGV[2] consumer, ARGV[3] most entries,
-- ARGV[4] retry base (ms), ARGV[5] retry cap (ms), ARGV[6] claim idle (ms).
-- Returns {{entry id, deliveries (this one included), {field, value, ...}}, ...}, in this order:
-- 1. this consumer's failed entries whose backoff (base * 2^(deliveries-1), capped) has passed,
--    claimed again (XCLAIM counts the delivery);
-- 2. entries idle for the claim timeout on any consumer, i.e. a dead worker's (XAUTOCLAIM);
-- 3. new entries (XREADGROUP >).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
local group, me, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local base, cap, claim_idle = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {}

local mine = redis.call('XPENDING', KEYS[1], group, 'IDLE', base, '-', '+', want, me)
for _, p in ipairs(mine) do
  local n = tonumber(p[4])
  local due = math.floor(math.min(base * 2 ^ (n - 1), cap))
  if tonumber(p[3]) >= due then
    -- An entry deleted meanwhile is dropped from the pending list by XCLAIM and not returned.
    local claimed = redis.call('XCLAIM', KEYS[1], group, me, due, p[1])
    if claimed[1] then
      out[#out + 1] = {claimed[1][1], n + 1, claimed[1][2]}
    end
  end
end

if #out < want then
  local taken = redis.call('XAUTOCLAIM', KEYS[1], group, me, claim_idle, '0-0', 'COUNT', want - #out)
  for _, e in ipairs(taken[2]) do
    local p = redis.call('XPENDING', KEYS[1], group, e[1], e[1], 1)
    out[#out + 1] = {e[1], tonumber(p[1][4]), e[2]}
  end
end

if #out < want then
  local fresh = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', want - #out, 'STREAMS', KEYS[1], '>')
  if fresh then
    for _, e in ipairs(fresh[1][2]) do
      out[#out + 1] = {e[1], 1, e[2]}
    end
  end
end
return out
