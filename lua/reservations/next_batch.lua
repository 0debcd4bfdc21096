-- Next batch for one worker (consumer-group semantics, at-least-once delivery).
-- KEYS[1] work stream. ARGV[2] group, ARGV[3] consumer, ARGV[4] most entries,
-- ARGV[5] retry base (ms), ARGV[6] retry cap (ms), ARGV[7] claim idle (ms).
-- Returns {{entry id, deliveries (this one included), {field, value, ...}}, ...}, in this order:
-- 1. this consumer's failed entries whose backoff (base * 2^(deliveries-1), capped) has passed,
--    claimed again (XCLAIM counts the delivery); only the oldest `most` of its entries idle for
--    the base are looked at, so one call's cost stays bounded (twin: the memory store's
--    next_batch looks at the same ones);
-- 2. entries idle for the claim timeout on any consumer, i.e. a dead worker's (XAUTOCLAIM);
-- 3. new entries (XREADGROUP >).
-- Idle times are Redis's own clock (stream internals), never the pinned clock.
local WORK = KEYS[1]
local group, me, want = ARGV[2], ARGV[3], tonumber(ARGV[4])
local base, cap, claim_idle = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', WORK) == 0 then
  return {}
end
local out = {}

local mine = redis.call('XPENDING', WORK, group, 'IDLE', base, '-', '+', want, me)
for _, p in ipairs(mine) do
  local n = tonumber(p[4])
  local due = math.floor(math.min(base * 2 ^ (n - 1), cap))
  if tonumber(p[3]) >= due then
    -- An entry deleted meanwhile is dropped from the pending list by XCLAIM and not returned.
    local claimed = redis.call('XCLAIM', WORK, group, me, due, p[1])
    if claimed[1] then
      out[#out + 1] = {claimed[1][1], n + 1, claimed[1][2]}
    end
  end
end

if #out < want then
  local taken = redis.call('XAUTOCLAIM', WORK, group, me, claim_idle, '0-0', 'COUNT', want - #out)
  for _, e in ipairs(taken[2]) do
    local p = redis.call('XPENDING', WORK, group, e[1], e[1], 1)
    out[#out + 1] = {e[1], tonumber(p[1][4]), e[2]}
  end
end

if #out < want then
  local fresh = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', want - #out, 'STREAMS', WORK, '>')
  if fresh then
    for _, e in ipairs(fresh[1][2]) do
      out[#out + 1] = {e[1], 1, e[2]}
    end
  end
end
return out
